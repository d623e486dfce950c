// Package ignore reads patterns in .gitignore syntax, for the ignore settings of every source
// kind.
package ignore

import (
	"bufio"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// Parse reads the patterns of text (one per line; blank lines and # comments skipped), relative
// to the folder domain (nil for the root).
func Parse(text string, domain []string) []gitignore.Pattern {
	var ps []gitignore.Pattern
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, domain))
	}
	return ps
}

// Matcher says whether a slash-separated path of an archive is ignored, for archives read as a
// flat list of entries: a file is ignored when it or one of its folders matches.
type Matcher struct{ m gitignore.Matcher }

// New returns a Matcher for text; an empty text ignores nothing.
func New(text string) *Matcher { return &Matcher{m: gitignore.NewMatcher(Parse(text, nil))} }

// Ignored reports whether the file at p is left out.
func (m *Matcher) Ignored(p string) bool {
	parts := strings.Split(p, "/")
	for i := 1; i < len(parts); i++ {
		if m.m.Match(parts[:i], true) {
			return true
		}
	}
	return m.m.Match(parts, false)
}
