package setters

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// source maps yaml.v3 node positions back to byte offsets. The parser counts lines the YAML way
// (CRLF is one break; CR, NEL, LS and PS are breaks too) and columns in characters, not bytes,
// and does not count a leading UTF-8 byte order mark; source mirrors all of that.
type source struct {
	b      []byte
	starts []int // byte offset where each line begins; starts[0] is line 1
}

var utf8BOM = []byte("\xef\xbb\xbf")

func newSource(b []byte) *source {
	s := &source{b: b, starts: make([]int, 1, bytes.Count(b, []byte{'\n'})+2)}
	if bytes.HasPrefix(b, utf8BOM) {
		s.starts[0] = len(utf8BOM)
	}
	for i := s.starts[0]; i < len(b); {
		if n := breakLen(b, i); n > 0 {
			i += n
			s.starts = append(s.starts, i)
			continue
		}
		i++
	}
	return s
}

// breakLen returns the length of the line break starting at b[i], or 0 when there is none.
func breakLen(b []byte, i int) int {
	switch b[i] {
	case '\n':
		return 1
	case '\r':
		if i+1 < len(b) && b[i+1] == '\n' {
			return 2
		}
		return 1
	case 0xC2: // NEL
		if i+1 < len(b) && b[i+1] == 0x85 {
			return 2
		}
	case 0xE2: // LS, PS
		if i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9) {
			return 3
		}
	}
	return 0
}

// offset turns a 1-based line and character column into a byte offset, or -1 when the position
// is not inside the content.
func (s *source) offset(line, col int) int {
	if line < 1 || line > len(s.starts) || col < 1 {
		return -1
	}
	i := s.starts[line-1]
	for c := 1; c < col; c++ {
		if i >= len(s.b) || breakLen(s.b, i) > 0 {
			return -1
		}
		_, w := utf8.DecodeRune(s.b[i:])
		i += w
	}
	return i
}

// lineEnd returns the offset of the line break (or end of content) at or after i.
func (s *source) lineEnd(i int) int {
	for i < len(s.b) && breakLen(s.b, i) == 0 {
		i++
	}
	return i
}

// line returns the bytes of a 1-based line without its break.
func (s *source) line(n int) []byte {
	if n < 1 || n > len(s.starts) {
		return nil
	}
	start := s.starts[n-1]
	return s.b[start:s.lineEnd(start)]
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func isFlowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

// Reasons a marked value is left alone.
const (
	reasonBlock     = "value is a block scalar"
	reasonMultiline = "value does not fit on the line of its marker"
	reasonNotScalar = "value is not a scalar"
	reasonAlias     = "value is an alias, not a scalar"
	reasonNotOnLine = "marker is not on the line of its value"
	reasonLocate    = "value could not be located in the source"
)

// span finds the bytes of a single-line scalar, after any anchor or tag, and checks that they
// read back as the parser's value. That check is what makes splicing safe: any disagreement
// between our reading of the position and the parser's turns into a reason, never an edit.
func (s *source) span(n *yaml.Node, flow bool) (start, end int, reason string) {
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return 0, 0, reasonBlock
	}
	i := s.offset(n.Line, n.Column)
	if i < 0 {
		return 0, 0, reasonLocate
	}
	b, eol := s.b, s.lineEnd(i)
	// The node's position is that of its first property, if it has any.
	for i < eol && (b[i] == '&' || b[i] == '!') {
		for i < eol && !isBlank(b[i]) && !(flow && isFlowIndicator(b[i])) {
			i++
		}
		for i < eol && isBlank(b[i]) {
			i++
		}
	}
	var text string
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		end = quotedEnd(b, i, eol, '"')
		if end < 0 {
			return 0, 0, reasonMultiline
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b[i:end], &doc); err != nil || len(doc.Content) != 1 {
			return 0, 0, reasonLocate
		}
		text = doc.Content[0].Value
	case n.Style&yaml.SingleQuotedStyle != 0:
		end = quotedEnd(b, i, eol, '\'')
		if end < 0 {
			return 0, 0, reasonMultiline
		}
		text = strings.ReplaceAll(string(b[i+1:end-1]), "''", "'")
	default:
		end = plainEnd(b, i, eol, flow)
		text = string(b[i:end])
	}
	if text != n.Value {
		return 0, 0, reasonMultiline
	}
	return i, end, ""
}

// quotedEnd returns the offset just past the closing quote of the scalar opening at b[i], or -1
// when the scalar does not close on this line.
func quotedEnd(b []byte, i, eol int, q byte) int {
	if i >= eol || b[i] != q {
		return -1
	}
	for j := i + 1; j < eol; j++ {
		switch {
		case q == '"' && b[j] == '\\':
			j++ // the escaped character; a break here means a continued line
		case b[j] == q && q == '\'' && j+1 < eol && b[j+1] == '\'':
			j++
		case b[j] == q:
			return j + 1
		}
	}
	return -1
}

// plainEnd returns where the plain scalar starting at b[i] ends on its line: before a comment,
// before a flow indicator inside flow collections, and without trailing blanks.
func plainEnd(b []byte, i, eol int, flow bool) int {
	j := i
	for ; j < eol; j++ {
		c := b[j]
		if j > i && c == '#' && isBlank(b[j-1]) {
			break
		}
		if j == i && c == '#' {
			break
		}
		if flow && (isFlowIndicator(c) || c == ':' && (j+1 == eol || isBlank(b[j+1]) || isFlowIndicator(b[j+1]))) {
			break
		}
	}
	for j > i && isBlank(b[j-1]) {
		j--
	}
	return j
}

// trailingComment returns the comment that follows a value ending at end on the same line,
// without its '#', or false when something else comes first.
func (s *source) trailingComment(end int) (string, bool) {
	eol := s.lineEnd(end)
	rest := s.b[end:eol]
	trimmed := bytes.TrimLeft(rest, " \t")
	if len(trimmed) == len(rest) && end > 0 && !isBlank(s.b[end-1]) {
		return "", false // a comment must be separated from the value
	}
	if len(trimmed) == 0 || trimmed[0] != '#' {
		return "", false
	}
	return string(bytes.TrimRight(trimmed[1:], " \t")), true
}
