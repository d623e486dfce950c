package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzSelect feeds arbitrary policies and tags. New may refuse them, but only with ErrInvalid;
// Select must not panic, must answer a tag it was given that passes the pattern, must answer the
// same for the tags reversed, and must extract exactly what regexp.Expand would.
func FuzzSelect(f *testing.F) {
	seeds := []struct {
		kind                  uint8
		arg, pattern, extract string
		tags                  string
	}{
		{0, ">=1.0.0 <2.0.0", "", "", "1.0.0\nv1.2.3\n1.2.3+b\n2.0.0\nlatest\n1.5.0-rc.1"},
		{0, ">=1.0.0-0", `^v?(?P<v>.*)$`, "$v", "v1.0.0-rc.1\n1.0.0\nv1.0.0"},
		{1, "asc", `^main-[a-f0-9]+-(?P<ts>[0-9]+)$`, "$ts", "main-abc-1\nmain-def-2\nmain-x-3"},
		{1, "desc", "", "", "b\na\nc\n"},
		{2, "asc", `^(\d+)-(\d+)$`, "${2}.$1", "1-2\n3-1\n-1\n1e3-0"},
		{2, "desc", "", "", "NaN\n-Inf\n10\n9\n-0\n0"},
		{3, "~1.2", `(?P<a>x)|(?P<a>y)`, "$a$$", "1.2.3x\ny\n"},
		{4, "x", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.kind, s.arg, s.pattern, s.extract, s.tags)
	}
	f.Fuzz(func(t *testing.T, k uint8, arg, pattern, extract, list string) {
		o := Options{Pattern: pattern, Extract: extract}
		switch k % 5 {
		case 0:
			o.Kind, o.SemVer = KindSemVer, arg
		case 1:
			o.Kind, o.Alphabetical = KindAlphabetical, arg
		case 2:
			o.Kind, o.Numerical = KindNumerical, arg
		case 3:
			o.SemVer = arg
		default:
			o.Kind = arg
		}
		s, err := New(o)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("New(%+v): %v does not wrap ErrInvalid", o, err)
			}
			return
		}
		tags := strings.Split(list, "\n")
		got, err := s.Select(tags)
		reversed := slices.Clone(tags)
		slices.Reverse(reversed)
		again, errAgain := s.Select(reversed)
		if got != again || (err == nil) != (errAgain == nil) {
			t.Fatalf("order changed the answer: %q (%v) then %q (%v)", got, err, again, errAgain)
		}
		if err != nil {
			var nm *NoMatchError
			if !errors.As(err, &nm) {
				t.Fatalf("Select: %v is not a *NoMatchError", err)
			}
			if len(nm.Nearest) > maxNearest || nm.Error() == "" {
				t.Fatalf("bad NoMatchError %+v", nm)
			}
			for _, n := range nm.Nearest {
				if !slices.Contains(tags, n) {
					t.Fatalf("nearest %q is not one of the tags", n)
				}
			}
			return
		}
		if !slices.Contains(tags, got) {
			t.Fatalf("Select answered %q, which is not one of the tags", got)
		}
		if s.re != nil && !s.re.MatchString(got) {
			t.Fatalf("Select answered %q, which the pattern %q does not match", got, pattern)
		}
		if s.extract != nil {
			for _, tag := range tags {
				m := s.re.FindStringSubmatchIndex(tag)
				if m == nil {
					continue
				}
				want := string(s.re.ExpandString(nil, extract, tag, m))
				if got := string(s.extract.expand(nil, tag, m)); got != want {
					t.Fatalf("extract %q of %q: got %q, regexp.Expand gives %q", extract, tag, got, want)
				}
			}
		}
	})
}
