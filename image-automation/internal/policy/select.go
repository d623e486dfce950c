package policy

import (
	"math"
	"strconv"

	"github.com/Masterminds/semver/v3"
)

// Select returns the newest of tags by the policy: the original tag, not its extracted value.
//
// Tags that the pattern does not match, whose extracted value is empty, or whose value the kind
// cannot read (not a version, not a finite number) are left out. Among tags whose values compare
// equal the lexically greatest tag wins, so the order of tags and duplicates do not matter. When
// no tag qualifies the error is a *NoMatchError.
func (s *Selector) Select(tags []string) (string, error) {
	var best string
	var found bool
	switch s.kind {
	case semverKind:
		best, found = s.selectSemVer(tags)
	case alphabeticalKind:
		best, found = s.selectAlphabetical(tags)
	default:
		best, found = s.selectNumerical(tags)
	}
	if !found {
		return "", s.noMatch(tags)
	}
	return best, nil
}

// scan calls fn with every tag that passes the filter and its value, which is never empty. The
// value is either str (the tag or a substring of it) or, when the template had to be expanded, b:
// a buffer scan reuses, so fn must copy what it keeps of b.
func (s *Selector) scan(tags []string, fn func(tag string, value []byte, str string)) {
	var buf []byte
	single := s.extract.single()
	for _, tag := range tags {
		switch {
		case s.re == nil:
			if tag != "" {
				fn(tag, nil, tag)
			}
		case s.extract == nil:
			if tag != "" && s.re.MatchString(tag) {
				fn(tag, nil, tag)
			}
		default:
			m := s.re.FindStringSubmatchIndex(tag)
			if m == nil {
				continue
			}
			if single {
				if lo, hi, ok := s.extract[0].span(m); ok && hi > lo {
					fn(tag, nil, tag[lo:hi])
				}
				continue
			}
			buf = s.extract.expand(buf[:0], tag, m)
			if len(buf) > 0 {
				fn(tag, buf, "")
			}
		}
	}
}

// valueOf gives the value scan passed as a string, copying only when it lives in buf.
func valueOf(b []byte, str string) string {
	if b != nil {
		return string(b)
	}
	return str
}

func (s *Selector) selectAlphabetical(tags []string) (string, bool) {
	var best, bestValue string
	found := false
	s.scan(tags, func(tag string, b []byte, str string) {
		// The comparisons convert b without copying; a copy is made only for a new best.
		if !found {
			best, bestValue, found = tag, valueOf(b, str), true
			return
		}
		var c int
		if b != nil {
			c = compareStrings(string(b), bestValue)
		} else {
			c = compareStrings(str, bestValue)
		}
		if s.desc {
			c = -c
		}
		if c > 0 || (c == 0 && tag > best) {
			best, bestValue, found = tag, valueOf(b, str), true
		}
	})
	return best, found
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseNumber reads a numerical value as strconv.ParseFloat does, but refuses NaN and the
// infinities, which have no useful place in an order of builds. Values that cannot start a finite
// number are skipped before ParseFloat, whose errors allocate.
func parseNumber(v string) (float64, bool) {
	d := v
	if len(d) > 0 && (d[0] == '+' || d[0] == '-') {
		d = d[1:]
	}
	if len(d) == 0 || !(d[0] == '.' || (d[0] >= '0' && d[0] <= '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func (s *Selector) selectNumerical(tags []string) (string, bool) {
	var best string
	var bestValue float64
	found := false
	s.scan(tags, func(tag string, b []byte, str string) {
		f, ok := parseNumber(valueOf(b, str))
		if !ok {
			return
		}
		if !found || (!s.desc && f > bestValue) || (s.desc && f < bestValue) || (f == bestValue && tag > best) {
			best, bestValue, found = tag, f, true
		}
	})
	return best, found
}

// parseVersion reads a value as semver.NewVersion does, skipping at once the values that cannot
// be a version (the common case of a filter-less policy over branch or commit tags).
func parseVersion(v string) (*semver.Version, bool) {
	if len(v) == 0 || len(v) > semver.MaxVersionLen || !(v[0] == 'v' || (v[0] >= '0' && v[0] <= '9')) {
		return nil, false
	}
	ver, err := semver.NewVersion(v)
	if err != nil {
		return nil, false
	}
	return ver, true
}

func (s *Selector) selectSemVer(tags []string) (string, bool) {
	var best string
	var bestVer *semver.Version
	s.scan(tags, func(tag string, b []byte, str string) {
		v, ok := parseVersion(valueOf(b, str))
		if !ok {
			return
		}
		if bestVer != nil {
			// Comparing first spares the range check for most tags.
			c := v.Compare(bestVer)
			if c < 0 || (c == 0 && tag <= best) {
				return
			}
		}
		if s.constraint.Check(v) {
			best, bestVer = tag, v
		}
	})
	return best, bestVer != nil
}
