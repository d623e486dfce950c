package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// TestEveryReasonIsDocumented holds the controllers to one vocabulary: every condition type and
// reason an API module declares is explained in docs/contracts/conditions.md.
func TestEveryReasonIsDocumented(t *testing.T) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "contracts", "conditions.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "*", "api", "v1beta1", "reasons.go"))
	if err != nil || len(files) < 5 {
		t.Fatalf("reasons.go of the five API modules: found %v (%v)", files, err)
	}
	for _, f := range files {
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(parsed, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || len(vs.Values) != len(vs.Names) {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasSuffix(name.Name, "Reason") && !strings.HasSuffix(name.Name, "Condition") {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				if !strings.Contains(string(doc), "`"+v+"`") {
					rel, _ := filepath.Rel(root, f)
					t.Errorf("%s: %s = %q is not in docs/contracts/conditions.md", rel, name.Name, v)
				}
			}
			return true
		})
	}
}
