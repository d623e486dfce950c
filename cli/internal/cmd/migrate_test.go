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
	writeFile(g, dir, "unsupported.yaml", "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: app\nspec:\n  install:\n    serverSideApply: true\n")
	code, out, _ = migrateRun(dir)
	g.Expect(code).To(Equal(ExitFailure))
	g.Expect(out).To(ContainSubstring("unsupported.yaml:7: HelmRelease/app: spec.install.serverSideApply: Plumb has no such field"))

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
	code, _, errOut = migrateRun(dir, "--from", "jenkins")
	g.Expect(code).To(Equal(ExitUsage))
	g.Expect(errOut).To(ContainSubstring("flux or argocd"))
	code, _, errOut = migrateRun(dir, "--repo-url", "https://example.com/x.git")
	g.Expect(code).To(Equal(ExitUsage))
	g.Expect(errOut).To(ContainSubstring("--repo-url is for --from argocd"))
	code, _, _ = migrateRun(filepath.Join(dir, "clean.yaml"))
	g.Expect(code).To(Equal(ExitUsage))
}

func TestMigrateRepoArgoCD(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	const app = `# The web shop.
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://example.com/fleet.git
    targetRevision: main
    path: shop # plain manifests
  destination:
    server: https://kubernetes.default.svc
    namespace: shop
  syncPolicy:
    automated:
      prune: true
`
	g.Expect(os.MkdirAll(filepath.Join(dir, "apps"), 0o755)).To(Succeed())
	g.Expect(os.MkdirAll(filepath.Join(dir, "shop"), 0o755)).To(Succeed())
	writeFile(g, dir, "apps/shop.yaml", app)
	writeFile(g, dir, "shop/web.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n")

	// The repository is not known to be the one migrated: whether shop/ holds a chart is not
	// known either, so exit 1, and nothing written without --write.
	code, out, errOut := migrateRun(dir, "--from", "argocd")
	g.Expect(errOut).To(BeEmpty())
	g.Expect(code).To(Equal(ExitFailure))
	g.Expect(out).To(ContainSubstring("apps/shop.yaml:10: Application/shop: spec.source.path: https://example.com/fleet.git is not the repository being migrated"))
	g.Expect(out).To(ContainSubstring("would change apps/shop.plumb.yaml"))
	g.Expect(filepath.Join(dir, "apps", "shop.plumb.yaml")).NotTo(BeAnExistingFile())

	// With its URL, -n and --write: exit 0, the objects written, the Application kept.
	code, out, _ = migrateRun(dir, "--from", "argocd", "--repo-url", "git@example.com:fleet.git", "-n", "gitops", "--write")
	g.Expect(code).To(Equal(ExitOK), out)
	g.Expect(out).To(ContainSubstring("1 Argo CD objects to 2 Plumb objects in 1 files (changed); 0 fields"))
	g.Expect(os.ReadFile(filepath.Join(dir, "apps", "shop.yaml"))).To(BeEquivalentTo(app))
	written, err := os.ReadFile(filepath.Join(dir, "apps", "shop.plumb.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(written)).To(ContainSubstring("# The web shop.\n# From Argo CD Application shop (apps/shop.yaml:2).\napiVersion: apply.plumb.dev/v1beta1\nkind: Kustomization\nmetadata:\n  name: shop\n  namespace: gitops\n"))
	g.Expect(string(written)).To(ContainSubstring("  path: ./shop # plain manifests\n  prune: true\n  targetNamespace: shop\n  driftPolicy: Warn\n"))
}
