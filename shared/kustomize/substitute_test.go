package kustomize

import (
	"strings"
	"testing"
)

func TestSubstitute(t *testing.T) {
	vars := map[string]string{"A": "1", "name_2": "two", "EMPTY": ""}
	cases := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "1", ""},
		{"x-${A}-${name_2}-y", "x-1-two-y", ""},
		{"${MISSING}", "", ""},
		{"${MISSING:=def}", "def", ""},
		{"${A:=def}", "1", ""},
		{"${EMPTY:=def}", "", ""},
		{"${MISSING:=}", "", ""},
		{"$${A}", "${A}", ""},
		{"$A and $", "$A and $", ""},
		{"cost: $5", "cost: $5", ""},
		{"${A", "", "no closing brace"},
		{"${1A}", "", "not a variable name"},
		{"${A-B}", "", "not a variable name"},
		{"${}", "", "not a variable name"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Substitute(tc.in, vars)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Substitute(%q) error = %v, want %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Substitute(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzSubstitute(f *testing.F) {
	for _, s := range []string{"${A}", "x${A:=d}y", "$${A}", "${", "${1}", "$$$", "${A:=${B}}"} {
		f.Add(s)
	}
	vars := map[string]string{"A": "value", "B": ""}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Substitute(s, vars)
		if err != nil {
			return
		}
		if !strings.Contains(s, "${") && out != s {
			t.Fatalf("text without references changed: %q -> %q", s, out)
		}
		if len(out) > len(s)*len("value")+16 {
			t.Fatalf("output %d bytes for %d bytes of input", len(out), len(s))
		}
	})
}
