package setters

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// source maps yaml.v3 node positions back to byte offsets. The parser counts lines the YAML way
// (CRLF is one break; CR, NEL, LS and PS are breaks too) and columns in characters, not bytes,
// and does not count a leading UTF-8 byte order mark; source mirrors all of that. Lookups are
// O(1) on ASCII lines so that a huge one-line file with a marker stays linear.
type source struct {
	b     []byte
	lines []lineInfo // lines[0] is line 1
}

type lineInfo struct {
	start, end int  // end is the offset of the line's break, or of the end of content
	ascii      bool // every byte of the line is ASCII, so columns are byte counts
	marked     int8 // whether the line contains markerKey: 0 not yet known, 1 yes, -1 no
}

var utf8BOM = []byte("\xef\xbb\xbf")

func newSource(b []byte) *source {
	s := &source{b: b, lines: make([]lineInfo, 0, bytes.Count(b, []byte{'\n'})+1)}
	cur := lineInfo{ascii: true}
	if bytes.HasPrefix(b, utf8BOM) {
		cur.start = len(utf8BOM)
	}
	for i := cur.start; i < len(b); {
		if b[i] >= utf8.RuneSelf {
			cur.ascii = false
		}
		n := breakLen(b, i)
		if n == 0 {
			i++
			continue
		}
		cur.end = i
		s.lines = append(s.lines, cur)
		i += n
		cur = lineInfo{start: i, ascii: true}
	}
	cur.end = len(b)
	s.lines = append(s.lines, cur)
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

// lineAt returns a 1-based line, or false when there is no such line.
func (s *source) lineAt(n int) (*lineInfo, bool) {
	if n < 1 || n > len(s.lines) {
		return nil, false
	}
	return &s.lines[n-1], true
}

// offset turns a 1-based line and character column into a byte offset, or -1 when the position
// is not inside the line.
func (s *source) offset(line, col int) int {
	l, ok := s.lineAt(line)
	if !ok || col < 1 {
		return -1
	}
	if l.ascii {
		if l.start+col-1 > l.end {
			return -1
		}
		return l.start + col - 1
	}
	i := l.start
	for c := 1; c < col; c++ {
		if i >= l.end {
			return -1
		}
		_, w := utf8.DecodeRune(s.b[i:l.end])
		i += w
	}
	return i
}

// hasMarker reports whether a 1-based line contains markerKey anywhere.
func (s *source) hasMarker(line int) bool {
	l, ok := s.lineAt(line)
	if !ok {
		return false
	}
	if l.marked == 0 {
		l.marked = -1
		if bytes.Contains(s.b[l.start:l.end], []byte(markerKey)) {
			l.marked = 1
		}
	}
	return l.marked == 1
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
	b, eol := s.b, s.lines[n.Line-1].end
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

// trailingComment returns the comment that follows a value ending at end on a 1-based line,
// without its '#', or false when something else comes first.
func (s *source) trailingComment(line, end int) (string, bool) {
	l, ok := s.lineAt(line)
	if !ok || end < l.start || end > l.end {
		return "", false
	}
	eol := l.end
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
