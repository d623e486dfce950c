package setters

import (
	"strconv"
	"strings"
	"unicode"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// singleQuotable reports whether s fits in a single-quoted scalar on one line: single quotes
// have no escapes, so every character must be printable and none may break the line.
func singleQuotable(s string) bool {
	for _, r := range s {
		if r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xFEFF || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// plainSafe reports whether s can be written unquoted in place of old. The text must read back
// as exactly s, as a lone plain scalar, and must not turn a string into a number, bool or null:
// it may resolve to a string or keep the type the old value had.
func plainSafe(s string, old *yaml.Node, flow bool) bool {
	if s == "" || strings.ContainsAny(s, "\t\r\n") || !singleQuotable(s) {
		return false
	}
	if flow && strings.ContainsAny(s, ",[]{}") {
		return false
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil || len(doc.Content) != 1 {
		return false
	}
	n := doc.Content[0]
	if n.Kind != yaml.ScalarNode || n.Style != 0 || n.Value != s || n.Anchor != "" ||
		n.HeadComment != "" || n.LineComment != "" || n.FootComment != "" {
		return false
	}
	if old.Style&yaml.TaggedStyle != 0 {
		return true // the old value's explicit tag stays in front of the new text
	}
	return n.ShortTag() == "!!str" || n.ShortTag() == old.ShortTag()
}

// doubleQuote writes s as a double-quoted scalar. Go's escapes (\n, \t, \xNN below 0x80,
// \uNNNN, \UNNNNNNNN) mean the same in YAML, and s is valid UTF-8, so no \xNN names a raw byte.
func doubleQuote(s string) string {
	return strconv.Quote(s)
}
