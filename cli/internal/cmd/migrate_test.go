package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

// migrateRun is plumb migrate with no cluster at all.
func migrateRun(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := execute(context.Background(), append([]string{"migrate", "repo"}, args...), nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestMigrateRepo(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	const clean = `# The fleet.
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: fleet
spec:
  interval: 1m # often
  url: https://example.com/fleet.git
`
	writeFile(g, dir, "clean.yaml", clean)

	// Only a report: the file stays, exit 0 since everything can be migrated.
	code, out, errOut := migrateRun(dir)
	g.Expect(errOut).To(BeEmpty())
	g.Expect(code).To(Equal(ExitOK))
	g.Expect(out).To(ContainSubstring("would change clean.yaml"))
	g.Expect(os.ReadFile(filepath.Join(dir, "clean.yaml"))).To(BeEquivalentTo(clean))

	// A field Plumb does not have: exit 1, with file:line.
	writeFile(g, dir, "verify.yaml", "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: app\nspec:\n  url: oci://example.com/app\n  verify:\n    provider: cosign\n")
	code, out, _ = migrateRun(dir)
	g.Expect(code).To(Equal(ExitFailure))
	g.Expect(out).To(ContainSubstring("verify.yaml:7: OCIRepository/app: spec.verify: Plumb has no such field"))

	// --write rewrites, keeps the comments, and still says what is left.
	code, out, _ = migrateRun(dir, "--write")
	g.Expect(code).To(Equal(ExitFailure))
	g.Expect(out).To(ContainSubstring("changed clean.yaml"))
	g.Expect(os.ReadFile(filepath.Join(dir, "clean.yaml"))).To(BeEquivalentTo(`# The fleet.
apiVersion: source.plumb.dev/v1beta1
kind: GitRepository
metadata:
  name: fleet
spec:
  interval: 1m # often
  url: https://example.com/fleet.git
`))

	// Mistakes in the command.
	code, _, errOut = migrateRun(dir, "--from", "argocd")
	g.Expect(code).To(Equal(ExitUsage))
	g.Expect(errOut).To(ContainSubstring("only flux"))
	code, _, _ = migrateRun(filepath.Join(dir, "clean.yaml"))
	g.Expect(code).To(Equal(ExitUsage))
}
