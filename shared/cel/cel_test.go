package cel

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCompileKinds(t *testing.T) {
	ctx := context.Background()
	strict := NewKind(BoolType, false, "a")
	loose := NewKind(BoolType, true, "a")
	text := NewKind(StringType, false, "a")

	x, err := Compile(strict, "a.n == 1")
	if err != nil {
		t.Fatal(err)
	}
	if y, _ := Compile(strict, "a.n == 1"); y != x {
		t.Error("the same expression was compiled twice")
	}
	if ok, err := x.Bool(ctx, map[string]any{"a": map[string]any{"n": 1}}); err != nil || !ok {
		t.Errorf("Bool = %v, %v; want true", ok, err)
	}

	// A field's type is known only when the expression runs: a loose kind takes it and checks
	// the result then; a strict one refuses it.
	if _, err := Compile(strict, "a.flag"); !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "not bool") {
		t.Errorf("strict dyn: %v", err)
	}
	d, err := Compile(loose, "a.flag")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Bool(ctx, map[string]any{"a": map[string]any{"flag": "yes"}}); err == nil || !strings.Contains(err.Error(), "not a bool") {
		t.Errorf("a string where a bool is due: %v", err)
	}

	// Undeclared variables and wrong result types are compile errors naming the expression.
	for k, src := range map[*Kind]string{strict: "b.n == 1", text: "a.n == 1"} {
		if _, err := Compile(k, src); !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), src) {
			t.Errorf("Compile(%q) = %v, want ErrCompile naming it", src, err)
		}
	}
	s, err := Compile(text, "a.name + '-x'")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Text(ctx, map[string]any{"a": map[string]any{"name": "web"}}); err != nil || got != "web-x" {
		t.Errorf("Text = %q, %v", got, err)
	}

	// A kind of any result gives a value that another expression can read back as a variable
	// (a list here), as generic-oidc's variables are.
	anyKind := NewKind(nil, true, "a", "vars")
	v, err := Compile(anyKind, "[a.owner + '/one', a.owner + '/two']")
	if err != nil {
		t.Fatal(err)
	}
	val, err := v.Value(ctx, map[string]any{"a": map[string]any{"owner": "org"}, "vars": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	in, err := Compile(NewKind(BoolType, true, "a", "vars"), "a.repo in vars.repos")
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]bool{"org/two": true, "org/three": false} {
		got, err := in.Bool(ctx, map[string]any{"a": map[string]any{"repo": repo}, "vars": map[string]any{"repos": val}})
		if err != nil || got != want {
			t.Errorf("%s in the variable = %v, %v; want %v", repo, got, err, want)
		}
	}

	// A parse-only kind sees whatever it is given.
	p, err := Compile(ParseOnly(), "status.ready")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Bool(ctx, map[string]any{"status": map[string]any{"ready": true}}); err != nil || !ok {
		t.Errorf("parse-only Bool = %v, %v", ok, err)
	}
}
