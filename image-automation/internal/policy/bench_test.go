package policy

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchTags makes n tags the way a busy repository has them: releases with and without "v",
// pre-releases, builds of main, dated releases and build numbers, in no particular order.
func benchTags(n int) []string {
	r := rand.New(rand.NewPCG(3, 4))
	tags := make([]string, 0, n)
	for i := range n {
		maj, min, patch := r.IntN(6), r.IntN(30), r.IntN(50)
		switch i % 6 {
		case 0:
			tags = append(tags, fmt.Sprintf("%d.%d.%d", maj, min, patch))
		case 1:
			tags = append(tags, fmt.Sprintf("v%d.%d.%d", maj, min, patch))
		case 2:
			tags = append(tags, fmt.Sprintf("v%d.%d.%d-rc.%d", maj, min, patch, r.IntN(9)))
		case 3:
			tags = append(tags, fmt.Sprintf("main-%07x-%d", r.Uint32()>>4, 1700000000+r.IntN(1e7)))
		case 4:
			tags = append(tags, fmt.Sprint(r.IntN(1e6)))
		default:
			tags = append(tags, fmt.Sprintf("RELEASE.2024-%02d-%02dT%02d-00-00Z", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24)))
		}
	}
	return tags
}

func BenchmarkSelect(b *testing.B) {
	tags := benchTags(10_000)
	cases := []struct {
		name string
		opts Options
	}{
		{"semver", Options{SemVer: ">=1.0.0 <4.0.0"}},
		{"semver/prerelease", Options{SemVer: ">=1.0.0-0 <4.0.0"}},
		{"semver/pattern", Options{SemVer: ">=1.0.0 <4.0.0", Pattern: `^v?[0-9]+\.[0-9]+\.[0-9]+`}},
		{"semver/pattern+extract", Options{SemVer: ">=1.0.0-0 <4.0.0", Pattern: `^v(?P<version>[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.]+)?)$`, Extract: "$version"}},
		{"semver/pattern+template", Options{SemVer: ">=1.0.0 <4.0.0", Pattern: `^v?(?P<maj>[0-9]+)\.(?P<min>[0-9]+)\.(?P<patch>[0-9]+)$`, Extract: "${maj}.${min}.${patch}"}},
		{"alphabetical", Options{Alphabetical: "asc"}},
		{"alphabetical/pattern+extract", Options{Alphabetical: "asc", Pattern: `^RELEASE\.(?P<ts>.+)Z$`, Extract: "$ts"}},
		{"numerical", Options{Numerical: "asc"}},
		{"numerical/pattern+extract", Options{Numerical: "asc", Pattern: `^main-[a-f0-9]+-(?P<ts>[0-9]+)$`, Extract: "$ts"}},
		{"nomatch/semver", Options{SemVer: ">=9.0.0"}},
		{"nomatch/pattern", Options{SemVer: "*", Pattern: `^release-`}},
	}
	for _, bc := range cases {
		s, err := New(bc.opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = s.Select(tags)
			}
		})
	}
}
