package policy

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// maxNearest is how many tags a NoMatchError shows: enough to see the mistake, short enough for
// a condition message.
const maxNearest = 3

// NoMatchError says that no tag qualified, and shows what came closest so that a person can tell
// a wrong range or pattern from a repository that has no such image yet.
type NoMatchError struct {
	// Total is the number of tags given.
	Total int
	// Filtered is the number of tags that filterTags.pattern matches (all of them without one).
	Filtered int
	// Nearest holds up to three tags that came closest: for a semver range, the pre-releases it
	// leaves out and the versions nearest its bounds, highest first; when the pattern matched
	// nothing, the tags sharing the longest start with it; otherwise the lexically last tags.
	Nearest []string
	// Policy names what was asked, e.g. `semver range ">=2.0.0 <3.0.0"`.
	Policy string
	// Pattern is filterTags.pattern, empty without a filter.
	Pattern string
	// Hint says why nothing qualified when that can be told, e.g. that the range leaves out
	// pre-releases.
	Hint string
}

func (e *NoMatchError) Error() string {
	if e.Total == 0 {
		return "no tag to choose from: the list of tags is empty"
	}
	var b strings.Builder
	if e.Pattern != "" && e.Filtered == 0 {
		fmt.Fprintf(&b, "no tag of %d matches filterTags.pattern %q", e.Total, e.Pattern)
	} else {
		fmt.Fprintf(&b, "no tag of %d matches %s", e.Total, e.Policy)
		if e.Pattern != "" {
			verb := "pass"
			if e.Filtered == 1 {
				verb = "passes"
			}
			fmt.Fprintf(&b, " (%d %s the filter)", e.Filtered, verb)
		}
	}
	if len(e.Nearest) > 0 {
		b.WriteString("; nearest: ")
		b.WriteString(strings.Join(e.Nearest, ", "))
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// candidate is a tag that passed the filter, with its value.
type candidate struct {
	tag, value string
	ver        *semver.Version
}

// noMatch explains an empty choice. It runs only when Select found nothing, so it may take a
// second pass over the tags and sort them.
func (s *Selector) noMatch(tags []string) *NoMatchError {
	e := &NoMatchError{Total: len(tags), Filtered: len(tags), Policy: s.describe(), Pattern: s.pattern}
	if len(tags) == 0 {
		return e
	}
	if s.re != nil {
		e.Filtered = 0
		for _, tag := range tags {
			if s.re.MatchString(tag) {
				e.Filtered++
			}
		}
		if e.Filtered == 0 {
			prefix, _ := s.re.LiteralPrefix()
			e.Nearest = nearestByPrefix(tags, prefix)
			return e
		}
	}

	cands := make([]candidate, 0, e.Filtered)
	s.scan(tags, func(tag string, b []byte, str string) {
		cands = append(cands, candidate{tag: tag, value: valueOf(b, str)})
	})
	if len(cands) == 0 {
		var passed []string
		for _, tag := range tags {
			if s.re == nil || s.re.MatchString(tag) {
				passed = append(passed, tag)
			}
		}
		e.Nearest = lexicallyLast(passed)
		if s.extract != nil {
			e.Hint = "filterTags.extract gives an empty value for every tag that passes the filter"
		} else {
			e.Hint = "every tag is empty"
		}
		return e
	}
	// Sample the lexically greatest tags, so the message does not depend on the input order.
	slices.SortFunc(cands, func(a, b candidate) int { return cmp.Compare(b.tag, a.tag) })

	switch s.kind {
	case numericalKind:
		e.Nearest = lexicallyLast(tagsOf(cands))
		e.Hint = "none of their values is a number, e.g. " + s.sample(cands[0])
	case semverKind:
		var vers []candidate
		for _, c := range cands {
			if v, ok := parseVersion(c.value); ok {
				c.ver = v
				vers = append(vers, c)
			}
		}
		if len(vers) == 0 {
			e.Nearest = lexicallyLast(tagsOf(cands))
			e.Hint = "none of their values is a semantic version, e.g. " + s.sample(cands[0])
			return e
		}
		e.Nearest, e.Hint = s.nearestVersions(vers)
	default:
		// Any non-empty value qualifies alphabetically, so this is not reached; say so plainly
		// rather than panic if that ever changes.
		e.Nearest = lexicallyLast(tagsOf(cands))
	}
	return e
}

// sample quotes a value, with its tag when the two differ.
func (s *Selector) sample(c candidate) string {
	if c.value == c.tag {
		return fmt.Sprintf("%q", c.value)
	}
	return fmt.Sprintf("%q (from tag %q)", c.value, c.tag)
}

func tagsOf(cands []candidate) []string {
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.tag
	}
	return out
}

// lexicallyLast returns up to maxNearest distinct tags, greatest first.
func lexicallyLast(tags []string) []string {
	return nearestByPrefix(tags, "")
}

// nearestByPrefix ranks tags by how long a start they share with prefix (the literal start of
// the pattern), then by lexical order, greatest first; it returns up to maxNearest distinct tags.
func nearestByPrefix(tags []string, prefix string) []string {
	type scored struct {
		tag   string
		score int
	}
	all := make([]scored, len(tags))
	for i, tag := range tags {
		n := 0
		for n < len(tag) && n < len(prefix) && tag[n] == prefix[n] {
			n++
		}
		all[i] = scored{tag, n}
	}
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(b.tag, a.tag)
	})
	var out []string
	for _, s := range all {
		if len(out) == maxNearest {
			break
		}
		if len(out) == 0 || out[len(out)-1] != s.tag {
			out = append(out, s.tag)
		}
	}
	return out
}

// boundRegexp finds the versions written in a range, e.g. "2.0.0" and "3.0.0" in
// ">=2.0.0 <3.0.0" or "1.2.x" in "~1.2.x", to measure how near a tag comes to it.
var boundRegexp = regexp.MustCompile(`[0-9]+(?:\.(?:[0-9]+|[xX*]))*(?:-[0-9A-Za-z.-]+)?`)

// bounds returns the versions written in the range, wildcards read as 0.
func (s *Selector) bounds() []*semver.Version {
	var out []*semver.Version
	for _, lit := range boundRegexp.FindAllString(s.rng, -1) {
		core, pre, hasPre := strings.Cut(lit, "-")
		core = strings.NewReplacer("x", "0", "X", "0", "*", "0").Replace(core)
		if hasPre {
			core += "-" + pre
		}
		if v, ok := parseVersion(core); ok {
			out = append(out, v)
		}
	}
	return out
}

// nearestVersions picks, among versions outside the range, first the pre-releases that the range
// would take if it included pre-releases, then those nearest one of its bounds counted in
// versions between (the higher on a tie). Equal versions count once, by the tag Select would
// choose. The result is shown highest first.
func (s *Selector) nearestVersions(vers []candidate) ([]string, string) {
	slices.SortStableFunc(vers, func(a, b candidate) int {
		if c := a.ver.Compare(b.ver); c != 0 {
			return c
		}
		return cmp.Compare(a.tag, b.tag)
	})
	uniq := vers[:0:0]
	for i, c := range vers {
		if i+1 < len(vers) && vers[i+1].ver.Compare(c.ver) == 0 {
			continue // keep the last, the lexically greatest tag
		}
		uniq = append(uniq, c)
	}

	withPre := *s.constraint
	withPre.IncludePrerelease = true
	type ranked struct {
		i        int
		leftOut  bool // a pre-release the range takes once pre-releases are in
		distance int
	}
	bounds := s.bounds()
	rs := make([]ranked, len(uniq))
	for i, c := range uniq {
		rs[i] = ranked{i: i, leftOut: c.ver.Prerelease() != "" && withPre.Check(c.ver)}
	}
	for _, b := range bounds {
		// below is the number of versions under the bound; the one just under and the one at
		// or just over it are both at distance 1.
		below, _ := slices.BinarySearchFunc(uniq, b, func(c candidate, v *semver.Version) int { return c.ver.Compare(v) })
		for i := range rs {
			d := i - below + 1
			if i < below {
				d = below - i
			}
			if rs[i].distance == 0 || d < rs[i].distance {
				rs[i].distance = d
			}
		}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.leftOut != b.leftOut {
			if a.leftOut {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.distance, b.distance); c != 0 {
			return c
		}
		return cmp.Compare(b.i, a.i)
	})
	rs = rs[:min(len(rs), maxNearest)]
	slices.SortFunc(rs, func(a, b ranked) int { return cmp.Compare(b.i, a.i) })

	var hint string
	out := make([]string, len(rs))
	for k, r := range rs {
		out[k] = uniq[r.i].tag
		if r.leftOut && hint == "" {
			hint = fmt.Sprintf("the range leaves out pre-releases such as %s: it takes them only when it names one, e.g. \">=1.0.0-0\"", uniq[r.i].tag)
		}
	}
	return out, hint
}
