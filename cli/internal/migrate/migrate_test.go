package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

const fluxSources = `# The repository of the fleet.
---
apiVersion: source.toolkit.fluxcd.io/v1 # Flux's
kind: GitRepository
metadata:
  name: fleet
  namespace: flux-system
spec:
  interval: 1m   # how often
  url: https://example.com/fleet.git
  ref:
    branch: main
  verify:
    mode: HEAD
    provider: cosign
`

const fluxApps = `apiVersion: "kustomize.toolkit.fluxcd.io/v1"
kind: Kustomization
metadata:
  name: apps
spec:
  interval: 10m
  # Infrastructure first.
  dependsOn:
    - name: infra
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: fleet
    apiVersion: source.toolkit.fluxcd.io/v1
  decryption:
    provider: sops
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
spec:
  interval: 5m
  install:
    serverSideApply: true # Helm 4's
  chartRef:
    kind: OCIRepository
    name: podinfo
  values:
    anything: goes
    nested: {deep: true}
`

const plain = `# Not Flux.
apiVersion: apps/v1
kind:  Deployment
metadata:
  name: web
`

const helmTemplate = `{{- if .Values.enabled }}
apiVersion: v1
kind: ConfigMap
{{- end }}
`

func tree(t *testing.T, g Gomega, files map[string]string) string {
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		g.Expect(os.MkdirAll(filepath.Dir(p), 0o755)).To(Succeed())
		g.Expect(os.WriteFile(p, []byte(content), 0o644)).To(Succeed())
	}
	return dir
}

func read(g Gomega, dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	g.Expect(err).NotTo(HaveOccurred())
	return string(b)
}

func schemas(g Gomega) Schemas {
	s, err := PlumbSchemas()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s).To(HaveKey("Kustomization.apply.plumb.dev"))
	return s
}

func TestRepoReportsWithoutWriting(t *testing.T) {
	g := NewWithT(t)
	dir := tree(t, g, map[string]string{"clusters/sources.yaml": fluxSources, "clusters/apps.yml": fluxApps, "apps/web.yaml": plain, "chart/templates/cm.yaml": helmTemplate})

	r, err := Repo(dir, schemas(g), false)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Migrated).To(Equal(3))
	g.Expect(r.Changed).To(ConsistOf(filepath.Join("clusters", "apps.yml"), filepath.Join("clusters", "sources.yaml")))
	var lines []string
	for _, f := range r.Findings {
		lines = append(lines, f.String())
	}
	g.Expect(lines).To(HaveExactElements(
		HavePrefix(filepath.Join("clusters", "apps.yml")+":26: HelmRelease/podinfo: spec.install.serverSideApply: Plumb has no such field"),
		HavePrefix(filepath.Join("clusters", "sources.yaml")+":15: GitRepository/fleet: spec.verify.provider: Plumb has no such field"),
	))
	g.Expect(r.Skipped).To(HaveExactElements(HavePrefix(filepath.Join("chart", "templates", "cm.yaml") + ": not YAML")))
	// Nothing was written.
	g.Expect(read(g, dir, "clusters/sources.yaml")).To(Equal(fluxSources))
	g.Expect(read(g, dir, "clusters/apps.yml")).To(Equal(fluxApps))
}

func TestRepoWritesKeepingComments(t *testing.T) {
	g := NewWithT(t)
	dir := tree(t, g, map[string]string{"sources.yaml": fluxSources, "apps.yaml": fluxApps, "web.yaml": plain})
	info, err := os.Stat(filepath.Join(dir, "web.yaml"))
	g.Expect(err).NotTo(HaveOccurred())

	r, err := Repo(dir, schemas(g), true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Findings).To(HaveLen(2))

	// Byte for byte the same, but the apiVersions.
	g.Expect(read(g, dir, "sources.yaml")).To(Equal(strings.Replace(fluxSources, "source.toolkit.fluxcd.io/v1 #", "source.plumb.dev/v1beta1 #", 1)))
	want := strings.NewReplacer(
		`"kustomize.toolkit.fluxcd.io/v1"`, `"apply.plumb.dev/v1beta1"`,
		"apiVersion: source.toolkit.fluxcd.io/v1", "apiVersion: source.plumb.dev/v1beta1",
		"helm.toolkit.fluxcd.io/v2", "helm.plumb.dev/v1beta1",
	).Replace(fluxApps)
	g.Expect(read(g, dir, "apps.yaml")).To(Equal(want))
	g.Expect(want).To(ContainSubstring("# Infrastructure first."))

	// A file without Flux kinds is not written at all.
	after, err := os.Stat(filepath.Join(dir, "web.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after.ModTime()).To(Equal(info.ModTime()))
	g.Expect(read(g, dir, "web.yaml")).To(Equal(plain))

	// A second run finds nothing left to move.
	r, err = Repo(dir, schemas(g), true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Changed).To(BeEmpty())
	g.Expect(r.Migrated).To(BeZero())
}

func TestRepoWritesFlowStyle(t *testing.T) {
	g := NewWithT(t)
	const in = "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {name: a}\nspec:\n  providerRef: {name: slack}\n  eventSources: [{apiVersion: kustomize.toolkit.fluxcd.io/v1, kind: Kustomization, name: x}, {apiVersion: 'helm.toolkit.fluxcd.io/v2', kind: HelmRelease, name: y}]\n"
	dir := tree(t, g, map[string]string{"alert.yaml": in})
	r, err := Repo(dir, schemas(g), true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Findings).To(BeEmpty())
	g.Expect(read(g, dir, "alert.yaml")).To(Equal("apiVersion: notification.plumb.dev/v1beta1\nkind: Alert\nmetadata: {name: a}\nspec:\n  providerRef: {name: slack}\n  eventSources: [{apiVersion: apply.plumb.dev/v1beta1, kind: Kustomization, name: x}, {apiVersion: 'helm.plumb.dev/v1beta1', kind: HelmRelease, name: y}]\n"))
}

func TestRepoReportsKindsPlumbDoesNotHave(t *testing.T) {
	g := NewWithT(t)
	dir := tree(t, g, map[string]string{"gen.yaml": `apiVersion: source.extensions.fluxcd.io/v1beta1
kind: ArtifactGenerator
metadata:
  name: gen
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: ExternalArtifact
metadata:
  name: ext
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: from-ext
spec:
  sourceRef:
    kind: ExternalArtifact
    name: ext
`})
	r, err := Repo(dir, schemas(g), false)
	g.Expect(err).NotTo(HaveOccurred())
	var lines []string
	for _, f := range r.Findings {
		lines = append(lines, f.String())
	}
	g.Expect(lines).To(HaveExactElements(
		HavePrefix("gen.yaml:1: ArtifactGenerator/gen: Plumb has no source extensions"),
		HavePrefix("gen.yaml:7: ExternalArtifact/ext: Plumb has no ExternalArtifact"),
		HavePrefix("gen.yaml:17: Kustomization/from-ext: spec.sourceRef.kind: Plumb has no ExternalArtifact"),
	))
	g.Expect(r.Migrated).To(Equal(1))
}

// A HelmRelease with a targetNamespace keeps its Helm storage where Flux keeps it: the line is
// added when the namespace is in the document, and reported when a kustomization sets it.
func TestRepoKeepsFluxStorageNamespace(t *testing.T) {
	g := NewWithT(t)
	const known = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  interval: 5m\n  targetNamespace: web # where it runs\n  chartRef: {kind: OCIRepository, name: web}\n"
	const unknown = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: api\nspec:\n  targetNamespace: api\n  chartRef: {kind: OCIRepository, name: api}\n"
	const set = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: db\n  namespace: apps\nspec:\n  targetNamespace: db\n  storageNamespace: db\n  chartRef: {kind: OCIRepository, name: db}\n"
	dir := tree(t, g, map[string]string{"known.yaml": known, "unknown.yaml": unknown, "set.yaml": set})
	r, err := Repo(dir, schemas(g), true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(read(g, dir, "known.yaml")).To(Equal(strings.NewReplacer("helm.toolkit.fluxcd.io/v2", "helm.plumb.dev/v1beta1",
		"# where it runs\n", "# where it runs\n  storageNamespace: apps\n").Replace(known)))
	g.Expect(read(g, dir, "set.yaml")).To(Equal(strings.Replace(set, "helm.toolkit.fluxcd.io/v2", "helm.plumb.dev/v1beta1", 1)))
	g.Expect(r.Findings).To(HaveExactElements(HaveField("String()", HavePrefix("unknown.yaml:6: HelmRelease/api: spec.storageNamespace: Flux keeps"))))
}
