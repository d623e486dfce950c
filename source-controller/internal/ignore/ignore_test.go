package ignore

import "testing"

func TestMatcher(t *testing.T) {
	m := New("# CI\n.github/\n*.md\n!keep.md\n/root-only.yaml\nbuild/**/tmp\n")
	cases := map[string]bool{
		".github/workflows/ci.yml": true,
		"docs/README.md":           true,
		"docs/keep.md":             false,
		"root-only.yaml":           true,
		"apps/root-only.yaml":      false,
		"build/a/b/tmp/x":          true,
		"apps/deploy.yaml":         false,
	}
	for p, want := range cases {
		if got := m.Ignored(p); got != want {
			t.Errorf("Ignored(%q) = %v, want %v", p, got, want)
		}
	}
	if New("").Ignored("anything/at/all") {
		t.Error("an empty pattern list ignores nothing")
	}
}
