package policy

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
)

func TestSelectNoMatch(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		tags []string
		want NoMatchError
		msg  string
	}{
		{
			name: "semver: versions nearest the bounds and left-out pre-releases",
			opts: Options{SemVer: ">=2.0.0 <3.0.0"},
			tags: []string{"0.1.0", "1.9.2", "1.9.3", "v1.9.3", "3.0.0-rc.1", "3.0.0", "3.1.0", "4.0.0", "latest"},
			want: NoMatchError{Total: 9, Filtered: 9, Nearest: []string{"3.0.0", "3.0.0-rc.1", "v1.9.3"}, Policy: `semver range ">=2.0.0 <3.0.0"`,
				Hint: `the range leaves out pre-releases such as 3.0.0-rc.1: it takes them only when it names one, e.g. ">=1.0.0-0"`},
			msg: `no tag of 9 matches semver range ">=2.0.0 <3.0.0"; nearest: 3.0.0, 3.0.0-rc.1, v1.9.3; the range leaves out pre-releases such as 3.0.0-rc.1: it takes them only when it names one, e.g. ">=1.0.0-0"`,
		},
		{
			name: "semver: only versions below the range",
			opts: Options{SemVer: "^2.0"},
			tags: []string{"0.1.0", "1.9.2", "1.9.3", "1.0.0", "main"},
			want: NoMatchError{Total: 5, Filtered: 5, Nearest: []string{"1.9.3", "1.9.2", "1.0.0"}, Policy: `semver range "^2.0"`},
			msg:  `no tag of 5 matches semver range "^2.0"; nearest: 1.9.3, 1.9.2, 1.0.0`,
		},
		{
			name: "semver: a range without bounds shows the highest",
			opts: Options{SemVer: "*"},
			tags: []string{"1.0.0-rc.1", "2.0.0-beta.1", "0.1.0-alpha", "0.0.1-a"},
			want: NoMatchError{Total: 4, Filtered: 4, Nearest: []string{"2.0.0-beta.1", "1.0.0-rc.1", "0.1.0-alpha"}, Policy: `semver range "*"`,
				Hint: `the range leaves out pre-releases such as 2.0.0-beta.1: it takes them only when it names one, e.g. ">=1.0.0-0"`},
		},
		{
			name: "semver with a filter: counts what passed",
			opts: Options{SemVer: ">=2.0.0", Pattern: `^v`},
			tags: []string{"v1.0.0", "v1.1.0", "5.0.0", "latest"},
			want: NoMatchError{Total: 4, Filtered: 2, Nearest: []string{"v1.1.0", "v1.0.0"}, Policy: `semver range ">=2.0.0"`, Pattern: "^v"},
			msg:  `no tag of 4 matches semver range ">=2.0.0" (2 pass the filter); nearest: v1.1.0, v1.0.0`,
		},
		{
			name: "semver: no value is a version",
			opts: Options{SemVer: "1.x", Pattern: `^main-(?P<sha>[a-f0-9]+)$`, Extract: "$sha"},
			tags: []string{"main-abc", "main-0a12", "main-fff", "main-fff", "v1.0.0"},
			want: NoMatchError{Total: 5, Filtered: 4, Nearest: []string{"main-fff", "main-abc", "main-0a12"}, Policy: `semver range "1.x"`,
				Pattern: `^main-(?P<sha>[a-f0-9]+)$`, Hint: `none of their values is a semantic version, e.g. "fff" (from tag "main-fff")`},
			msg: `no tag of 5 matches semver range "1.x" (4 pass the filter); nearest: main-fff, main-abc, main-0a12; none of their values is a semantic version, e.g. "fff" (from tag "main-fff")`,
		},
		{
			name: "pattern matches nothing: tags sharing its literal start",
			opts: Options{Numerical: "asc", Pattern: `^main-[a-f0-9]+-(?P<ts>[0-9]+)$`, Extract: "$ts"},
			tags: []string{"zeta", "master-abc-1", "main", "1.0.0", "feature-1", "mainline"},
			want: NoMatchError{Total: 6, Nearest: []string{"mainline", "main", "master-abc-1"}, Policy: "numerical order asc",
				Pattern: `^main-[a-f0-9]+-(?P<ts>[0-9]+)$`},
			msg: `no tag of 6 matches filterTags.pattern "^main-[a-f0-9]+-(?P<ts>[0-9]+)$"; nearest: mainline, main, master-abc-1`,
		},
		{
			name: "pattern without a literal start: lexically last",
			opts: Options{Alphabetical: "asc", Pattern: `^[0-9]+$`},
			tags: []string{"b", "a", "c", "c"},
			want: NoMatchError{Total: 4, Nearest: []string{"c", "b", "a"}, Policy: "alphabetical order asc", Pattern: `^[0-9]+$`},
		},
		{
			name: "numerical: no value is a number",
			opts: Options{Numerical: "desc"},
			tags: []string{"latest", "v1", "main"},
			want: NoMatchError{Total: 3, Filtered: 3, Nearest: []string{"v1", "main", "latest"}, Policy: "numerical order desc",
				Hint: `none of their values is a number, e.g. "v1"`},
			msg: `no tag of 3 matches numerical order desc; nearest: v1, main, latest; none of their values is a number, e.g. "v1"`,
		},
		{
			name: "extract gives nothing",
			opts: Options{Alphabetical: "asc", Pattern: `^build(-(?P<n>\d+))?$`, Extract: "$n"},
			tags: []string{"build", "other"},
			want: NoMatchError{Total: 2, Filtered: 1, Nearest: []string{"build"}, Policy: "alphabetical order asc", Pattern: `^build(-(?P<n>\d+))?$`,
				Hint: "filterTags.extract gives an empty value for every tag that passes the filter"},
			msg: `no tag of 2 matches alphabetical order asc (1 passes the filter); nearest: build; filterTags.extract gives an empty value for every tag that passes the filter`,
		},
		{
			name: "no tags at all",
			opts: Options{SemVer: "1.x"},
			tags: nil,
			want: NoMatchError{Policy: `semver range "1.x"`},
			msg:  "no tag to choose from: the list of tags is empty",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := New(tc.opts)
			g.Expect(err).NotTo(HaveOccurred())
			for i, tags := range orders(tc.tags) {
				got, err := s.Select(tags)
				g.Expect(got).To(BeEmpty())
				var nm *NoMatchError
				g.Expect(errors.As(err, &nm)).To(BeTrue(), "order %d: %v", i, err)
				g.Expect(*nm).To(Equal(tc.want), "order %d: %v", i, tags)
				if tc.msg != "" {
					g.Expect(nm.Error()).To(Equal(tc.msg))
				}
				g.Expect(errors.Is(err, ErrInvalid)).To(BeFalse(), "no match is not a bad policy")
			}
		})
	}
}
