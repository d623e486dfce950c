package migrate

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// unmappable uses a field of each kind that Plumb has no counterpart for.
const unmappable = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop
spec:
  project: payments
  source:
    repoURL: https://example.com/shop.git
    targetRevision: v1.2.0
    path: deploy
    kustomize:
      namePrefix: blue-
      commonAnnotations:
        team: shop
      replicas:
        - name: web
          count: 3
    directory:
      exclude: '*.json'
  destination:
    server: https://prod.example.com:6443
    namespace: shop
  syncPolicy:
    syncOptions:
      - CreateNamespace=true
      - Validate=false
      - PrunePropagationPolicy=orphan
  ignoreDifferences:
    - kind: Secret
      jqPathExpressions:
        - .data.token
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: fleet
spec:
  generators:
    - clusters: {}
    - git:
        repoURL: https://example.com/other.git
        directories:
          - path: apps/*
  template:
    metadata:
      name: '{{name}}'
    spec:
      source:
        repoURL: https://example.com/other.git
        path: '{{path}}'
      destination:
        server: https://kubernetes.default.svc
---
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: payments
`

func TestArgoCDFindings(t *testing.T) {
	g := NewWithT(t)
	dir := tree(t, g, map[string]string{"apps/shop.yaml": unmappable})

	r, err := ArgoCD(dir, ArgoOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	f := filepath.Join("apps", "shop.yaml")
	var lines []string
	for _, x := range r.Findings {
		lines = append(lines, x.String())
	}
	g.Expect(lines).To(HaveExactElements(
		HavePrefix(f+":6: Application/shop: spec.project: Argo CD project \"payments\""),
		HavePrefix(f+":13: Application/shop: spec.source.kustomize.commonAnnotations: kustomize puts commonAnnotations in pod templates too"),
		HavePrefix(f+":15: Application/shop: spec.source.kustomize.replicas: Plumb's Kustomization has no counterpart"),
		HavePrefix(f+":19: Application/shop: spec.source.directory.exclude: a Kustomization builds every manifest under its path"),
		HavePrefix(f+":21: Application/shop: spec.destination.server: the Application deploys to another cluster"),
		HavePrefix(f+":24: Application/shop: spec.syncPolicy.automated: Argo CD syncs this Application only when asked"),
		HavePrefix(f+":25: Application/shop: spec.syncPolicy.syncOptions: a Kustomization does not create its target namespace"),
		HavePrefix(f+":26: Application/shop: spec.syncPolicy.syncOptions: Plumb always validates"),
		HavePrefix(f+":27: Application/shop: spec.syncPolicy.syncOptions: Plumb has no counterpart of sync option \"PrunePropagationPolicy=orphan\""),
		HavePrefix(f+":30: Application/shop: spec.ignoreDifferences[0].jqPathExpressions: Plumb ignores fields by JSON pointer only"),
		HavePrefix(f+":39: ApplicationSet/fleet: spec.generators[0].clusters: Plumb cannot expand a clusters generator"),
		HavePrefix(f+":41: ApplicationSet/fleet: spec.generators[1].git.repoURL: https://example.com/other.git is not the repository being migrated"),
		HavePrefix(f+":55: AppProject/payments: Plumb has no counterpart of Argo CD's AppProject"),
	))
	// Without --write nothing is written, and the report says what would be.
	g.Expect(r.Changed).To(Equal([]string{filepath.Join("apps", "shop.plumb.yaml")}))
	g.Expect(filepath.Join(dir, "apps", "shop.plumb.yaml")).NotTo(BeAnExistingFile())

	// The Kustomization is still written, suspended since Argo CD synced by hand.
	r, err = ArgoCD(dir, ArgoOptions{Namespace: "flux-free", Write: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Objects).To(Equal(2))
	out := read(g, dir, "apps/shop.plumb.yaml")
	g.Expect(out).To(ContainSubstring("  namespace: flux-free\n"))
	g.Expect(out).To(ContainSubstring("  ref:\n    tag: v1.2.0\n"))
	g.Expect(out).To(ContainSubstring("  namePrefix: blue-\n"))
	g.Expect(out).To(ContainSubstring("  suspend: true\n"))
	// A second run does not read what the first wrote.
	r2, err := ArgoCD(dir, ArgoOptions{Write: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r2.Migrated).To(Equal(r.Migrated))
}

func TestGitRef(t *testing.T) {
	for _, tc := range []struct{ rev, want string }{
		{"", ""},
		{"HEAD", ""},
		{"main", "branch: main\n"},
		{"release-1.0", "branch: release-1.0\n"},
		{"v1.2.3", "tag: v1.2.3\n"},
		{"1.2", "tag: \"1.2\"\n"},
		{"1.2.*", "semver: 1.2.*\n"},
		{">=1.0.0 <2.0.0", "semver: '>=1.0.0 <2.0.0'\n"},
		{"refs/pull/7/head", "name: refs/pull/7/head\n"},
		{"0123456789abcdef0123456789abcdef01234567", "commit: 0123456789abcdef0123456789abcdef01234567\n"},
	} {
		t.Run(tc.rev, func(t *testing.T) {
			g := NewWithT(t)
			n := gitRef(str(tc.rev))
			if tc.want == "" {
				g.Expect(n).To(BeNil())
				return
			}
			b, err := yaml.Marshal(n)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(b)).To(Equal(tc.want))
		})
	}
}

func TestImage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nginx:1.27", "name: nginx\nnewTag: \"1.27\"\n"},
		{"registry.local:5000/team/web:v2", "name: registry.local:5000/team/web\nnewTag: v2\n"},
		{"web=registry.local/web:v2", "name: web\nnewName: registry.local/web\nnewTag: v2\n"},
		{"web=web@sha256:abc", "name: web\nnewName: web\ndigest: sha256:abc\n"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			g := NewWithT(t)
			b, err := yaml.Marshal(image(str(tc.in)))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(b)).To(Equal(tc.want))
		})
	}
}

func TestNormalizeURL(t *testing.T) {
	g := NewWithT(t)
	want := "github.com/argoproj/argocd-example-apps"
	for _, u := range []string{
		"https://github.com/argoproj/argocd-example-apps.git",
		"https://GitHub.com/argoproj/argocd-example-apps/",
		"git@github.com:argoproj/argocd-example-apps.git",
		"ssh://git@github.com/argoproj/argocd-example-apps",
		"https://user@github.com/argoproj/argocd-example-apps",
	} {
		g.Expect(normalizeURL(u)).To(Equal(want), u)
	}
	g.Expect(gitURL("git@github.com:argoproj/x.git")).To(Equal("ssh://git@github.com/argoproj/x.git"))
	g.Expect(gitURL("https://github.com/argoproj/x.git")).To(Equal("https://github.com/argoproj/x.git"))
}

func TestArgoCDReadsTheRepository(t *testing.T) {
	g := NewWithT(t)
	const apps = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: base
spec:
  source:
    repoURL: https://example.com/team/fleet
    path: base
    kustomize:
      namePrefix: blue-
  destination:
    server: https://kubernetes.default.svc
  syncPolicy:
    automated: {}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: plain
spec:
  source:
    repoURL: https://example.com/team/fleet
    path: plain
  destination:
    server: https://kubernetes.default.svc
  syncPolicy:
    automated: {}
`
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
	dir := tree(t, g, map[string]string{
		// The repository is known by its remote: no --repo-url needed.
		".git/config":             "[remote \"origin\"]\n\turl = git@example.com:team/fleet.git\n",
		"apps.yaml":               apps,
		"base/kustomization.yaml": "namePrefix: team-\nresources: [cm.yaml]\n",
		"base/cm.yaml":            cm,
		"base/overlay/cm.yaml":    cm,
		"plain/cm.yaml":           cm,
		"plain/nested/cm.yaml":    cm,
	})
	r, err := ArgoCD(dir, ArgoOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	var lines []string
	for _, f := range r.Findings {
		lines = append(lines, f.String())
	}
	// A kustomization's own subfolders are its business; a directory's are not Argo CD's.
	g.Expect(lines).To(HaveExactElements(
		HavePrefix(`apps.yaml:10: Application/base: spec.source.kustomize.namePrefix: Argo CD replaces the kustomization's namePrefix "team-"`),
		HavePrefix("apps.yaml:22: Application/plain: spec.source.directory.recurse: Argo CD reads only the files directly in ./plain"),
	))
}
