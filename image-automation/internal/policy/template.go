package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// template is filterTags.extract parsed once, following the rules of regexp.Expand, so that New
// can check each group it names and Select can expand without parsing the template per tag.
type template []segment

// segment is literal text, or a reference to groups when groups is set: one numbered group, or
// every group of a name (a pattern may use a name twice, e.g. in two alternatives), of which the
// first that took part in the match counts.
type segment struct {
	text   string
	groups []int
}

// parseTemplate splits an extract template into text and group references and checks every
// reference against re. regexp.Expand quietly expands an unknown group to nothing, which would make
// every tag compare equal; here it is an error naming the groups that do exist.
func parseTemplate(tmpl string, re *regexp.Regexp) (template, error) {
	var t template
	var text strings.Builder
	refs := 0
	rest := tmpl
	for {
		before, after, found := strings.Cut(rest, "$")
		text.WriteString(before)
		if !found {
			break
		}
		rest = after
		if strings.HasPrefix(rest, "$") {
			text.WriteByte('$')
			rest = rest[1:]
			continue
		}
		name, brace, tail, ok := templateName(rest)
		if !ok {
			// regexp.Expand keeps a malformed "$" as it is.
			text.WriteByte('$')
			continue
		}
		rest = tail
		groups, err := groupIndexes(re, name, brace)
		if err != nil {
			return nil, err
		}
		if text.Len() > 0 {
			t = append(t, segment{text: text.String()})
			text.Reset()
		}
		t = append(t, segment{groups: groups})
		refs++
	}
	if text.Len() > 0 {
		t = append(t, segment{text: text.String()})
	}
	if refs == 0 {
		return nil, errors.New("names no group of filterTags.pattern, so every tag would compare equal; use e.g. \"$1\" or \"${name}\"")
	}
	return t, nil
}

// templateName reads the name after a "$": the longest run of letters, digits and underscores,
// or the same between braces.
func templateName(s string) (name string, brace bool, rest string, ok bool) {
	if strings.HasPrefix(s, "{") {
		brace = true
		s = s[1:]
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
			break
		}
		i += size
	}
	if i == 0 {
		return "", false, "", false
	}
	name, rest = s[:i], s[i:]
	if brace {
		if !strings.HasPrefix(rest, "}") {
			return "", false, "", false
		}
		rest = rest[1:]
	}
	return name, brace, rest, true
}

// groupIndexes resolves a reference as regexp.Expand does: a plain decimal number (no leading
// zero) is a group number, anything else a group name.
func groupIndexes(re *regexp.Regexp, name string, brace bool) ([]int, error) {
	if n, ok := groupNumber(name); ok {
		if n > re.NumSubexp() {
			return nil, fmt.Errorf("refers to group %d, but filterTags.pattern has %s", n, countGroups(re.NumSubexp()))
		}
		return []int{n}, nil
	}
	var groups []int
	var names []string
	for i, n := range re.SubexpNames() {
		if n == name {
			groups = append(groups, i)
		}
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(groups) > 0 {
		return groups, nil
	}
	msg := fmt.Sprintf("names group %q, which filterTags.pattern does not have", name)
	if len(names) > 0 {
		msg += " (its named groups: " + strings.Join(names, ", ") + ")"
	} else {
		msg += " (it has no named groups)"
	}
	if !brace && name[0] >= '0' && name[0] <= '9' {
		// "$1x" is the group "1x" to regexp.Expand, not group 1 then "x".
		msg += "; write ${1}x to follow a group number with text"
	}
	return nil, errors.New(msg)
}

func groupNumber(name string) (int, bool) {
	if len(name) > 1 && name[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' || n >= 1e8 {
			return 0, false
		}
		n = n*10 + int(name[i]-'0')
	}
	return n, true
}

func countGroups(n int) string {
	switch n {
	case 0:
		return "no groups"
	case 1:
		return "1 group"
	}
	return fmt.Sprintf("%d groups", n)
}

// single reports whether t is one reference and nothing else: then a value is a substring of the
// tag, taken with no copy.
func (t template) single() bool {
	return len(t) == 1 && t[0].groups != nil
}

// span is where the first of the segment's groups that took part in the match m lies.
func (seg segment) span(m []int) (lo, hi int, ok bool) {
	for _, g := range seg.groups {
		if m[2*g] >= 0 {
			return m[2*g], m[2*g+1], true
		}
	}
	return 0, 0, false
}

// expand appends the value of t for the match m of tag to dst; a group that took no part in the
// match adds nothing, as with regexp.Expand.
func (t template) expand(dst []byte, tag string, m []int) []byte {
	for _, seg := range t {
		if seg.groups == nil {
			dst = append(dst, seg.text...)
		} else if lo, hi, ok := seg.span(m); ok {
			dst = append(dst, tag[lo:hi]...)
		}
	}
	return dst
}
