package policy

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
)

type selectCase struct {
	name string
	opts Options
	tags []string
	want string
}

// runSelect checks each case on its tags as given, reversed and shuffled: the answer must not
// depend on the order.
func runSelect(t *testing.T, tests []selectCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := New(tc.opts)
			g.Expect(err).NotTo(HaveOccurred())
			for i, tags := range orders(tc.tags) {
				got, err := s.Select(tags)
				g.Expect(err).NotTo(HaveOccurred(), "order %d: %v", i, tags)
				g.Expect(got).To(Equal(tc.want), "order %d: %v", i, tags)
			}
		})
	}
}

// orders returns tags as given, reversed, and in a few fixed shuffles.
func orders(tags []string) [][]string {
	out := [][]string{tags, slices.Clone(tags)}
	slices.Reverse(out[1])
	r := rand.New(rand.NewPCG(1, 2))
	for range 6 {
		s := slices.Clone(tags)
		r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		out = append(out, s)
	}
	return out
}

func TestSelectSemVer(t *testing.T) {
	runSelect(t, []selectCase{
		{"highest in range, compared as numbers",
			Options{SemVer: ">=1.0.0 <2.0.0"}, []string{"0.9.0", "1.0.0", "1.4.2", "1.10.0", "1.9.9", "2.0.0", "latest"}, "1.10.0"},
		{"range without pre-release leaves them out",
			Options{SemVer: ">=1.0.0"}, []string{"1.0.0", "1.1.0-rc.1", "2.0.0-alpha"}, "1.0.0"},
		{"range with pre-release takes them",
			Options{SemVer: ">=1.0.0-0"}, []string{"1.0.0", "1.1.0-rc.1", "1.0.1-beta"}, "1.1.0-rc.1"},
		{"pre-release identifiers compare numerically",
			Options{SemVer: ">=1.0.0-0"}, []string{"1.1.0-rc.2", "1.1.0-rc.10", "1.1.0-beta.11"}, "1.1.0-rc.10"},
		{"release beats its pre-releases",
			Options{SemVer: ">=1.0.0-0"}, []string{"1.1.0-rc.1", "1.1.0", "1.1.0-rc.2"}, "1.1.0"},
		{"v prefix accepted, original tag returned",
			Options{SemVer: "1.x"}, []string{"v1.2.3", "1.2.0", "v2.0.0"}, "v1.2.3"},
		{"v and no v equal: lexically greatest tag",
			Options{SemVer: "1.x"}, []string{"1.2.3", "v1.2.3"}, "v1.2.3"},
		{"build metadata parses",
			Options{SemVer: "~1.2"}, []string{"1.2.3+build.5", "1.2.2", "1.3.0"}, "1.2.3+build.5"},
		{"build metadata ties: lexically greatest tag",
			Options{SemVer: "~1.2"}, []string{"1.2.3", "1.2.3+b10", "1.2.3+b2"}, "1.2.3+b2"},
		{"tags that are no version are ignored",
			Options{SemVer: ">=0.0.0"}, []string{"latest", "main-abc", "1.0.0", "sha-123", "V9.0.0", "1.0.0.0"}, "1.0.0"},
		{"tilde",
			Options{SemVer: "~1.2"}, []string{"1.2.9", "1.3.0", "1.1.99"}, "1.2.9"},
		{"caret",
			Options{SemVer: "^1.2"}, []string{"1.1.0", "1.9.0", "2.0.0"}, "1.9.0"},
		{"or groups",
			Options{SemVer: "1.x || >=3.0.0 <3.2.0"}, []string{"1.5.0", "2.5.0", "3.1.0", "3.2.0"}, "3.1.0"},
		{"loose versions parse as semver.NewVersion does",
			Options{SemVer: "1.x"}, []string{"1.2", "1.1.5", "v1"}, "1.2"},
		{"duplicates are fine",
			Options{SemVer: "*"}, []string{"1.0.0", "1.0.0", "0.9.0", "0.9.0"}, "1.0.0"},
		{"kind set explicitly",
			Options{Kind: KindSemVer, SemVer: "<1.0.0"}, []string{"0.1.0", "0.10.0", "1.0.0"}, "0.10.0"},
	})
}

func TestSelectAlphabetical(t *testing.T) {
	const day = `^(?P<day>[0-9]{8})-(?P<sha>[a-f0-9]+)$`
	runSelect(t, []selectCase{
		{"asc by default: lexical, so 9 beats 10",
			Options{Kind: KindAlphabetical}, []string{"9", "10"}, "9"},
		{"asc picks the greatest",
			Options{Alphabetical: "asc"}, []string{"RELEASE.2023-01-31", "RELEASE.2024-02-01", "RELEASE.2024-01-15"}, "RELEASE.2024-02-01"},
		{"desc picks the least",
			Options{Alphabetical: "desc"}, []string{"b", "a", "c"}, "a"},
		{"extracted values compared, original tag returned",
			Options{Alphabetical: "asc", Pattern: day, Extract: "$day"}, []string{"20231231-fff", "20240101-0a", "20231230-ffff"}, "20240101-0a"},
		{"equal values: lexically greatest tag",
			Options{Alphabetical: "asc", Pattern: day, Extract: "$day"}, []string{"20240101-aaa", "20240101-bbb", "20231231-fff"}, "20240101-bbb"},
		{"equal values in desc: still the lexically greatest tag",
			Options{Alphabetical: "desc", Pattern: day, Extract: "$day"}, []string{"20240101-fff", "20231231-aaa", "20231231-bbb"}, "20231231-bbb"},
		{"empty values are ignored, not least",
			Options{Alphabetical: "desc", Pattern: `^build(?:-(?P<n>[a-z]+))?$`, Extract: "$n"}, []string{"build", "build-b", "build-a"}, "build-a"},
		{"a group matching nothing gives an empty value, ignored",
			Options{Alphabetical: "desc", Pattern: `^build-(?P<n>[a-z]*)$`, Extract: "$n"}, []string{"build-", "build-b", "build-a"}, "build-a"},
		{"an empty expanded template is ignored",
			Options{Alphabetical: "desc", Pattern: `^build-(?P<n>[a-z]*)(?P<m>[0-9]*)$`, Extract: "$n$m"}, []string{"build-", "build-b", "build-a"}, "build-a"},
	})
}

func TestSelectNumerical(t *testing.T) {
	runSelect(t, []selectCase{
		{"asc by default: numeric, so 10 beats 9",
			Options{Kind: KindNumerical}, []string{"9", "10", "2"}, "10"},
		{"desc picks the least",
			Options{Numerical: "desc"}, []string{"9", "10", "2"}, "2"},
		{"decimals and negatives, asc",
			Options{Numerical: "asc"}, []string{"-1", "-0.5", "0.25", "0.3"}, "0.3"},
		{"decimals and negatives, desc",
			Options{Numerical: "desc"}, []string{"-1", "-0.5", "0.25", "-10.5"}, "-10.5"},
		{"values that are no number are ignored",
			Options{Numerical: "asc"}, []string{"latest", "3", "12", "v40", "1e"}, "12"},
		{"NaN and infinities are ignored",
			Options{Numerical: "asc"}, []string{"NaN", "Inf", "+Inf", "infinity", "1e999", "7"}, "7"},
		{"minus infinity is ignored in desc",
			Options{Numerical: "desc"}, []string{"-Inf", "-infinity", "8", "7"}, "7"},
		{"equal values: lexically greatest tag",
			Options{Numerical: "asc"}, []string{"1", "1.0", "01", "0.5"}, "1.0"},
		{"timestamps extracted from main builds",
			Options{Numerical: "asc", Pattern: `^main-[a-f0-9]+-(?P<ts>[0-9]+)$`, Extract: "$ts"},
			[]string{"main-abc123-1700000000", "main-def456-1700000500", "main-0a1b2c-999", "feature-x-1800000000", "main-zzz-1900000000", "main-abc-1700000500x"},
			"main-def456-1700000500"},
		{"desc over extracted values",
			Options{Numerical: "desc", Pattern: `^build-(?P<n>[0-9]+)$`, Extract: "${n}"}, []string{"build-10", "build-9", "build-100", "9"}, "build-9"},
	})
}

func TestSelectFilter(t *testing.T) {
	runSelect(t, []selectCase{
		{"pattern without groups, whole tag compared",
			Options{SemVer: ">=0.0.0", Pattern: `^v1\.`}, []string{"v1.2.0", "v2.0.0", "v1.10.1", "1.11.0"}, "v1.10.1"},
		{"pattern is not anchored",
			Options{Alphabetical: "asc", Pattern: `rc`}, []string{"a-rc", "rc-b", "z-final"}, "rc-b"},
		{"extract builds a version from two groups",
			Options{SemVer: ">=1.0.0", Pattern: `^(?P<maj>\d+)_(?P<min>\d+)$`, Extract: "${maj}.${min}.0"}, []string{"1_2", "1_10", "2_0", "1_9", "3.0.0"}, "2_0"},
		{"extract built values against a range",
			Options{SemVer: "1.x", Pattern: `^(?P<maj>\d+)_(?P<min>\d+)$`, Extract: "${maj}.${min}.0"}, []string{"1_2", "1_10", "2_0", "1_9"}, "1_10"},
		{"a name used in two alternatives",
			Options{SemVer: "*", Pattern: `^v(?P<ver>\d+\.\d+\.\d+)$|^release-(?P<ver>\d+\.\d+\.\d+)$`, Extract: "$ver"},
			[]string{"v1.0.0", "release-1.2.0", "release-1.1.0", "v1.1.5"}, "release-1.2.0"},
		{"numbered group",
			Options{Numerical: "asc", Pattern: `^pr-(\d+)-(\d+)$`, Extract: "$2"}, []string{"pr-9-100", "pr-10-20", "pr-1-101"}, "pr-1-101"},
		{"group that took no part gives an empty value, ignored",
			Options{Numerical: "asc", Pattern: `^build(?:-(?P<n>\d+))?$`, Extract: "$n"}, []string{"build", "build-3", "build-12"}, "build-12"},
	})
}

func TestSelectDoesNotChangeTags(t *testing.T) {
	g := NewWithT(t)
	s, err := New(Options{SemVer: ">=3.0.0", Pattern: "^[0-9v]"})
	g.Expect(err).NotTo(HaveOccurred())
	tags := []string{"2.0.0", "x", "v1.0.0", "1.5.0-rc.1", "a"}
	_, err = s.Select(tags)
	g.Expect(err).To(HaveOccurred(), "the no-match path sorts, but its own copies")
	g.Expect(tags).To(Equal([]string{"2.0.0", "x", "v1.0.0", "1.5.0-rc.1", "a"}))
}

func TestSelectConcurrently(t *testing.T) {
	s, err := New(Options{SemVer: ">=1.0.0-0", Pattern: `^(?P<maj>\d+)_(?P<min>\d+)(?P<pre>-rc\.\d+)?$`, Extract: "${maj}.${min}.0$pre"})
	if err != nil {
		t.Fatal(err)
	}
	tags := []string{"1_2", "1_10-rc.1", "1_9", "x"}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if got, err := s.Select(tags); err != nil || got != "1_10-rc.1" {
					t.Errorf("Select = %q, %v", got, err)
				}
				if _, err := s.Select(tags[3:]); err == nil {
					t.Error("want no match")
				}
			}
		})
	}
	wg.Wait()
}
