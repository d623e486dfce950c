package release

import (
	"reflect"
	"testing"
)

func TestMerge(t *testing.T) {
	cases := []struct {
		name          string
		dst, src, out map[string]any
	}{
		{"nested maps merge", map[string]any{"a": map[string]any{"x": 1, "y": 2}}, map[string]any{"a": map[string]any{"y": 3}},
			map[string]any{"a": map[string]any{"x": 1, "y": 3}}},
		{"a scalar replaces a map", map[string]any{"a": map[string]any{"x": 1}}, map[string]any{"a": "flat"}, map[string]any{"a": "flat"}},
		{"a map replaces a scalar", map[string]any{"a": 1}, map[string]any{"a": map[string]any{"x": 1}}, map[string]any{"a": map[string]any{"x": 1}}},
		{"lists are replaced, not merged", map[string]any{"l": []any{1, 2}}, map[string]any{"l": []any{3}}, map[string]any{"l": []any{3}}},
		{"nil dst", nil, map[string]any{"a": 1}, map[string]any{"a": 1}},
	}
	for _, c := range cases {
		if got := Merge(c.dst, c.src); !reflect.DeepEqual(got, c.out) {
			t.Errorf("%s: Merge = %v, want %v", c.name, got, c.out)
		}
	}
}

func TestSetPath(t *testing.T) {
	vals := map[string]any{"image": map[string]any{"tag": "1"}}
	if err := SetPath(vals, "image.repository", "a,b=c"); err != nil {
		t.Fatal(err)
	}
	if err := SetPath(vals, `annotations.example\.com/owner`, "team"); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"image":       map[string]any{"tag": "1", "repository": "a,b=c"},
		"annotations": map[string]any{"example.com/owner": "team"},
	}
	if !reflect.DeepEqual(vals, want) {
		t.Errorf("SetPath = %v, want %v", vals, want)
	}
	for _, bad := range []string{"", "a..b", "a."} {
		if err := SetPath(map[string]any{}, bad, "x"); err == nil {
			t.Errorf("SetPath(%q) accepted", bad)
		}
	}
}

func TestDigestIgnoresKeyOrder(t *testing.T) {
	a, _ := ParseValues([]byte("b: 1\na: {q: 2, p: 1}\n"))
	b, _ := ParseValues([]byte(`{"a": {"p": 1, "q": 2}, "b": 1}`))
	if Digest(a) != Digest(b) {
		t.Error("equal values, different digests")
	}
	if Digest(nil) != Digest(map[string]any{}) {
		t.Error("no values and empty values differ")
	}
}

func TestDigestLabel(t *testing.T) {
	d := MaskedDigest(map[string]any{"a": "secret-value"}, []string{"secret-value"}, []string{"s@1"})
	l := DigestLabel(d)
	if len(l) > 63 {
		t.Fatalf("label %q longer than 63", l)
	}
	if got := LabelDigest(l); got != d {
		t.Errorf("LabelDigest(DigestLabel(%s)) = %s", d, got)
	}
	if LabelDigest("not-a-digest") != "" || LabelDigest("") != "" {
		t.Error("a label that is not a digest unpacked")
	}
	if d != MaskedDigest(map[string]any{"a": "other-value"}, []string{"other-value"}, []string{"s@1"}) {
		t.Error("the masked digest depends on the secret value")
	}
}
