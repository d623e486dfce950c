package config

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// TestBinariesLinkNoTestSupport: shared/testing (control planes, registries, test servers) is for
// tests only; no controller binary or the plumb command may link it.
func TestBinariesLinkNoTestSupport(t *testing.T) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"source-controller/cmd", "apply-controller/cmd", "helm-controller/cmd",
		"notification-controller/cmd", "image-automation/cmd", "cli/cmd/plumb"} {
		t.Run(bin, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".")
			cmd.Dir = filepath.Join(root, bin)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps in %s: %v\n%s", bin, err, out)
			}
			for _, pkg := range strings.Fields(string(out)) {
				if strings.HasPrefix(pkg, "github.com/plumb-dev/plumb/shared/testing") {
					t.Errorf("%s links %s", bin, pkg)
				}
			}
		})
	}
}
