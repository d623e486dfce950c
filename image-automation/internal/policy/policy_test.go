package policy

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
)

func TestNewRefusesBadOptions(t *testing.T) {
	const ts = `^main-[a-f0-9]+-(?P<ts>[0-9]+)$`
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"bad range", Options{SemVer: "not a range"},
			`invalid image policy: policy.semver.range "not a range" is not a valid semver range: `},
		{"range naming a tag", Options{SemVer: "latest"},
			`policy.semver.range "latest" is not a valid semver range: improper constraint: "latest"`},
		{"empty range", Options{Kind: KindSemVer, SemVer: " "},
			`policy.semver.range is empty`},
		{"range missing with kind semver", Options{Kind: KindSemVer},
			`policy.semver.range is empty`},
		{"bad regex", Options{Kind: KindAlphabetical, Pattern: `^main-(`},
			`filterTags.pattern "^main-(" does not compile: error parsing regexp: missing closing )`},
		{"extract names a missing group", Options{Kind: KindNumerical, Pattern: ts, Extract: "$version"},
			`filterTags.extract "$version" names group "version", which filterTags.pattern does not have (its named groups: ts)`},
		{"extract names a group of a pattern without names", Options{Kind: KindNumerical, Pattern: `^main-([0-9]+)$`, Extract: "${ts}"},
			`names group "ts", which filterTags.pattern does not have (it has no named groups)`},
		{"extract group number too high", Options{Kind: KindNumerical, Pattern: ts, Extract: "$2"},
			`filterTags.extract "$2" refers to group 2, but filterTags.pattern has 1 group`},
		{"extract number glued to text", Options{Kind: KindAlphabetical, Pattern: `^(\d+)-x$`, Extract: "$1x"},
			`names group "1x", which filterTags.pattern does not have (it has no named groups); write ${1}x to follow a group number with text`},
		{"extract names no group", Options{Kind: KindAlphabetical, Pattern: ts, Extract: "ts"},
			`filterTags.extract "ts" names no group of filterTags.pattern, so every tag would compare equal`},
		{"extract of only escaped dollars", Options{Kind: KindAlphabetical, Pattern: ts, Extract: "$$ts"},
			`names no group`},
		{"extract without pattern", Options{Kind: KindNumerical, Extract: "$ts"},
			`filterTags.extract "$ts" needs filterTags.pattern`},
		{"unknown alphabetical order", Options{Alphabetical: "ascending"},
			`policy.alphabetical.order "ascending" is unknown; use asc or desc`},
		{"order is case sensitive", Options{Numerical: "DESC"},
			`policy.numerical.order "DESC" is unknown; use asc or desc`},
		{"unknown kind", Options{Kind: "calver"},
			`policy kind "calver" is unknown; use semver, alphabetical or numerical`},
		{"two kinds set", Options{SemVer: "1.x", Numerical: "asc"},
			`policy sets semver and numerical; set exactly one of semver, alphabetical and numerical`},
		{"kind and another kind's field", Options{Kind: KindSemVer, SemVer: "1.x", Alphabetical: "desc"},
			`policy is semver but policy.alphabetical is set too`},
		{"kind numerical with a range", Options{Kind: KindNumerical, SemVer: "1.x"},
			`policy is numerical but policy.semver is set too`},
		{"nothing set", Options{Pattern: ".*"},
			`policy is empty; set exactly one of semver, alphabetical and numerical`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := New(tc.opts)
			g.Expect(s).To(BeNil())
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, ErrInvalid)).To(BeTrue(), "%v does not wrap ErrInvalid", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}

func TestNewAcceptsGoodOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		kind kind
		desc bool
	}{
		{"semver from its field", Options{SemVer: ">=1.0.0 <2.0.0"}, semverKind, false},
		{"alphabetical from its field", Options{Alphabetical: "desc"}, alphabeticalKind, true},
		{"numerical from its field", Options{Numerical: "asc"}, numericalKind, false},
		{"alphabetical by kind, default order", Options{Kind: KindAlphabetical}, alphabeticalKind, false},
		{"numerical by kind, desc", Options{Kind: KindNumerical, Numerical: "desc"}, numericalKind, true},
		{"braced group and escaped dollar", Options{Numerical: "asc", Pattern: `^(?P<ts>\d+)$`, Extract: "$$${ts}"}, numericalKind, false},
		{"whole match as group 0", Options{Alphabetical: "asc", Pattern: `\d+`, Extract: "$0"}, alphabeticalKind, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := New(tc.opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.kind).To(Equal(tc.kind))
			g.Expect(s.desc).To(Equal(tc.desc))
		})
	}
}
