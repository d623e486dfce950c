package migrate

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/kustomize"
)

// The tests below migrate public layouts (testdata/README.md) and compare what Plumb would
// apply from the migrated objects with what the original tool applies, rendered here the way
// that tool renders: Argo CD edits a copy of the kustomization (`kustomize edit`) and builds
// it, or runs `helm template` with the Application's values; Flux builds the path.

// copyTree copies a testdata folder to a temporary one.
func copyTree(t *testing.T, g Gomega, src string) string {
	dst := t.TempDir()
	g.Expect(filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})).To(Succeed())
	return dst
}

// memFS loads a folder into an in-memory file system under root.
func memFS(g Gomega, dir, root string) filesys.FileSystem {
	mem := filesys.MakeFsInMemory()
	g.Expect(filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join(root, filepath.ToSlash(rel)), b)
	})).To(Succeed())
	return mem
}

// objects reads the migrated objects of the files written, by kind/name.
func objects(g Gomega, dir string) map[string]map[string]any {
	out := map[string]map[string]any{}
	g.Expect(filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, OutputSuffix) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			var o map[string]any
			g.Expect(yaml.Unmarshal([]byte(doc), &o)).To(Succeed())
			md := o["metadata"].(map[string]any)
			out[o["kind"].(string)+"/"+md["name"].(string)] = o
		}
		return nil
	})).To(Succeed())
	return out
}

// byID indexes objects by kind/namespace/name.
func byID(objs []*unstructured.Unstructured) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, o := range objs {
		out[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o.Object
	}
	return out
}

// withNamespace fills in Argo CD's destination namespace where an object has none.
func withNamespace(objs []*unstructured.Unstructured, ns string) []*unstructured.Unstructured {
	for _, o := range objs {
		if o.GetNamespace() == "" && o.GetKind() != "Namespace" {
			o.SetNamespace(ns)
		}
	}
	return objs
}

// parseYAML splits a multi-document manifest into objects.
func parseYAML(g Gomega, manifest string) []*unstructured.Unstructured {
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(manifest, "\n---") {
		var o map[string]any
		g.Expect(yaml.Unmarshal([]byte(doc), &o)).To(Succeed())
		if len(o) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: o})
		}
	}
	return objs
}

// argoDirectory is what Argo CD applies from a directory source: the manifests directly in it.
func argoDirectory(g Gomega, dir, ns string) []*unstructured.Unstructured {
	entries, err := os.ReadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	var objs []*unstructured.Unstructured
	for _, e := range entries {
		if e.IsDir() || (filepath.Ext(e.Name()) != ".yaml" && filepath.Ext(e.Name()) != ".yml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		g.Expect(err).NotTo(HaveOccurred())
		objs = append(objs, parseYAML(g, string(b))...)
	}
	return withNamespace(objs, ns)
}

// argoKustomize is what Argo CD applies from a kustomize source: it edits the kustomization
// with the Application's options (as `kustomize edit` does) and builds it.
func argoKustomize(g Gomega, dir, ns string, edit func(k map[string]any)) []*unstructured.Unstructured {
	mem := memFS(g, dir, "/app")
	b, err := mem.ReadFile("/app/kustomization.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	k := map[string]any{}
	g.Expect(yaml.Unmarshal(b, &k)).To(Succeed())
	edit(k)
	b, err = yaml.Marshal(k)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mem.WriteFile("/app/kustomization.yaml", b)).To(Succeed())
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/app")
	g.Expect(err).NotTo(HaveOccurred())
	out, err := res.AsYaml()
	g.Expect(err).NotTo(HaveOccurred())
	return withNamespace(parseYAML(g, string(out)), ns)
}

// helmRender is `helm template`: the chart rendered with values, client only.
func helmRender(g Gomega, chartDir, release, ns string, valuesFiles []string, vals map[string]any) []*unstructured.Unstructured {
	ch, err := loader.Load(chartDir)
	g.Expect(err).NotTo(HaveOccurred())
	if len(valuesFiles) > 0 {
		// Plumb's valuesFiles are merged over the chart's values.yaml.
		merged := map[string]any{}
		for k, v := range ch.Values {
			merged[k] = v
		}
		for _, f := range valuesFiles {
			v, err := chartutil.ReadValuesFile(filepath.Join(chartDir, f))
			g.Expect(err).NotTo(HaveOccurred())
			merged = chartutil.CoalesceTables(v.AsMap(), merged)
		}
		ch.Values = merged
	}
	install := action.NewInstall(&action.Configuration{})
	install.ClientOnly, install.DryRun, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = release, ns
	rel, err := install.Run(ch, vals)
	g.Expect(err).NotTo(HaveOccurred())
	return withNamespace(parseYAML(g, rel.Manifest), ns)
}

// argoHelm is what Argo CD applies from a Helm source: helm template with the valueFiles, then
// values and valuesObject (one file), then the parameters (--set, --set-string).
func argoHelm(g Gomega, chartDir, release, ns string, opts values.Options) []*unstructured.Unstructured {
	for i, f := range opts.ValueFiles {
		if !filepath.IsAbs(f) {
			opts.ValueFiles[i] = filepath.Join(chartDir, f)
		}
	}
	vals, err := opts.MergeValues(getter.Providers{})
	g.Expect(err).NotTo(HaveOccurred())
	return helmRender(g, chartDir, release, ns, nil, vals)
}

// plumbKustomization builds a migrated Kustomization the way apply-controller does.
func plumbKustomization(g Gomega, repo string, obj map[string]any) []*unstructured.Unstructured {
	b, err := yaml.Marshal(obj)
	g.Expect(err).NotTo(HaveOccurred())
	var ks applyv1.Kustomization
	g.Expect(yaml.UnmarshalStrict(b, &ks)).To(Succeed())
	opts, err := kustomize.OptionsFor(context.Background(), nil, &ks, false)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := kustomize.NewTree(memFS(g, repo, "/src")).Build(opts)
	g.Expect(err).NotTo(HaveOccurred())
	return res.Objects
}

// plumbHelmRelease renders a migrated HelmRelease of a chart in the repository.
func plumbHelmRelease(g Gomega, repo string, obj map[string]any) []*unstructured.Unstructured {
	spec := obj["spec"].(map[string]any)
	chart := spec["chart"].(map[string]any)["spec"].(map[string]any)
	var files []string
	if vf, ok := chart["valuesFiles"].([]any); ok {
		for _, f := range vf {
			files = append(files, f.(string))
		}
	}
	vals, _ := spec["values"].(map[string]any)
	ns, _ := spec["targetNamespace"].(string)
	return helmRender(g, filepath.Join(repo, chart["chart"].(string)), spec["releaseName"].(string), ns, files, vals)
}

// checkSchemas says that every object written is one Plumb's CRDs take.
func checkSchemas(g Gomega, objs map[string]map[string]any) {
	s := schemas(g)
	for id, o := range objs {
		b, err := yaml.Marshal(o)
		g.Expect(err).NotTo(HaveOccurred())
		var n kyaml.Node
		g.Expect(kyaml.Unmarshal(b, &n)).To(Succeed())
		apiVersion := o["apiVersion"].(string)
		group, _, _ := strings.Cut(apiVersion, "/")
		schema, ok := s.Spec(group, o["kind"].(string))
		g.Expect(ok).To(BeTrue(), id)
		g.Expect(unknownFields(id, id, "spec", field(n.Content[0], "spec"), schema)).To(BeEmpty(), id)
	}
}

func TestArgoCDExampleApps(t *testing.T) {
	g := NewWithT(t)
	repo := copyTree(t, g, "testdata/argocd-example-apps")
	apps := map[string]string{}
	for _, f := range []string{"guestbook", "helm-guestbook", "kustomize-guestbook", "appsets"} {
		apps[f] = read(g, repo, "argocd/"+f+".yaml")
	}

	r, err := ArgoCD(repo, ArgoOptions{RepoURLs: []string{"https://github.com/argoproj/argocd-example-apps"}, Write: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Findings).To(BeEmpty())
	g.Expect(r.Migrated).To(Equal(5))
	g.Expect(r.Changed).To(ConsistOf("argocd/appsets.plumb.yaml", "argocd/guestbook.plumb.yaml", "argocd/helm-guestbook.plumb.yaml", "argocd/kustomize-guestbook.plumb.yaml"))
	// The Argo CD files stay as they are.
	for f, content := range apps {
		g.Expect(read(g, repo, "argocd/"+f+".yaml")).To(Equal(content))
	}
	// Comments go with the values they were written on.
	g.Expect(read(g, repo, "argocd/guestbook.plumb.yaml")).To(ContainSubstring("# The guestbook as plain YAML.\n# From Argo CD Application guestbook (argocd/guestbook.yaml:2).\n"))
	hg := read(g, repo, "argocd/helm-guestbook.plumb.yaml")
	g.Expect(hg).To(ContainSubstring("- values-production.yaml # a LoadBalancer\n"))
	g.Expect(hg).To(ContainSubstring("tag: v4 # an older frontend\n"))
	g.Expect(read(g, repo, "argocd/kustomize-guestbook.plumb.yaml")).To(ContainSubstring("targetNamespace: shop # wins over the destination's\n"))

	objs := objects(g, repo)
	ids := make([]string, 0, len(objs))
	for id := range objs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	g.Expect(ids).To(Equal([]string{
		"GitRepository/argocd-example-apps", "GitRepository/argocd-example-apps-master",
		"HelmRelease/helm-guestbook", "HelmRelease/helm-guestbook-prod", "HelmRelease/helm-guestbook-staging",
		"Kustomization/guestbook", "Kustomization/guestbook-dev", "Kustomization/kustomize-guestbook", "Kustomization/kustomize-guestbook-dev",
	}))
	checkSchemas(g, objs)
	g.Expect(objs["GitRepository/argocd-example-apps-master"]["spec"]).To(Equal(map[string]any{
		"interval": "3m", "url": "ssh://git@github.com/argoproj/argocd-example-apps.git", "ref": map[string]any{"branch": "master"},
	}))
	g.Expect(objs["Kustomization/kustomize-guestbook"]["spec"]).To(HaveKeyWithValue("prune", false))
	g.Expect(objs["Kustomization/kustomize-guestbook"]["spec"]).To(HaveKeyWithValue("force", true))
	g.Expect(objs["Kustomization/guestbook"]["spec"]).To(HaveKeyWithValue("prune", true))
	g.Expect(objs["HelmRelease/helm-guestbook"]["spec"]).To(HaveKeyWithValue("driftDetection", HaveKeyWithValue("mode", "warn")))
	g.Expect(objs["HelmRelease/helm-guestbook-prod"]["spec"]).To(HaveKeyWithValue("driftDetection", HaveKeyWithValue("mode", "enabled")))

	src := func(p string) string { return filepath.Join(repo, p) }
	cases := []struct {
		id   string
		want []*unstructured.Unstructured
	}{
		{"Kustomization/guestbook", argoDirectory(g, src("guestbook"), "guestbook")},
		{"Kustomization/guestbook-dev", argoDirectory(g, src("guestbook"), "guestbook-dev")},
		{"Kustomization/kustomize-guestbook-dev", argoKustomize(g, src("kustomize-guestbook"), "kustomize-guestbook-dev", func(map[string]any) {})},
		{"Kustomization/kustomize-guestbook", argoKustomize(g, src("kustomize-guestbook"), "kustomize-guestbook", func(k map[string]any) {
			k["nameSuffix"] = "-blue"
			k["namespace"] = "shop"
			k["images"] = []any{map[string]any{"name": "gcr.io/google-samples/gb-frontend", "newTag": "v6"}}
			k["labels"] = []any{map[string]any{"pairs": map[string]any{"tier": "frontend"}}}
			k["patches"] = []any{map[string]any{
				"target": map[string]any{"kind": "Deployment", "name": "guestbook-ui"},
				"patch":  "- op: replace\n  path: /spec/revisionHistoryLimit\n  value: 5",
			}}
		})},
		{"HelmRelease/helm-guestbook", argoHelm(g, src("helm-guestbook"), "helm-guestbook", "helm-guestbook", values.Options{
			ValueFiles:   []string{"values-production.yaml", valuesFile(t, g, "image:\n  tag: v4\nservice:\n  port: 8080\n")},
			Values:       []string{"replicaCount=2"},
			StringValues: []string{"image.pullPolicy=Always"},
		})},
		{"HelmRelease/helm-guestbook-staging", argoHelm(g, src("helm-guestbook"), "guestbook-staging", "staging", values.Options{Values: []string{"replicaCount=1"}})},
		{"HelmRelease/helm-guestbook-prod", argoHelm(g, src("helm-guestbook"), "guestbook-prod", "prod", values.Options{Values: []string{"replicaCount=3"}})},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			g := NewWithT(t)
			var got []*unstructured.Unstructured
			if strings.HasPrefix(tc.id, "Kustomization/") {
				got = plumbKustomization(g, repo, objs[tc.id])
			} else {
				got = plumbHelmRelease(g, repo, objs[tc.id])
			}
			g.Expect(tc.want).NotTo(BeEmpty())
			g.Expect(byID(got)).To(Equal(byID(tc.want)))
		})
	}
}

// valuesFile writes values to a file, as Argo CD passes an Application's values to helm.
func valuesFile(t *testing.T, g Gomega, content string) string {
	p := filepath.Join(t.TempDir(), "values.yaml")
	g.Expect(os.WriteFile(p, []byte(content), 0o644)).To(Succeed())
	return p
}

// fluxToPlumb moves the apiVersions of Flux's kinds in built YAML to Plumb's.
var fluxToPlumb = strings.NewReplacer(
	"kustomize.toolkit.fluxcd.io/v1", "apply.plumb.dev/v1beta1",
	"source.toolkit.fluxcd.io/v1beta2", "source.plumb.dev/v1beta1",
	"source.toolkit.fluxcd.io/v1", "source.plumb.dev/v1beta1",
	"helm.toolkit.fluxcd.io/v2", "helm.plumb.dev/v1beta1",
)

func TestFluxMultiTenancy(t *testing.T) {
	g := NewWithT(t)
	orig := "testdata/flux2-multi-tenancy"
	repo := copyTree(t, g, orig)

	r, err := Repo(repo, schemas(g), true)
	g.Expect(err).NotTo(HaveOccurred())
	var lines []string
	for _, f := range r.Findings {
		lines = append(lines, f.String())
	}
	g.Expect(lines).To(BeEmpty(), "every field of the layout has a Plumb counterpart (the kyverno OCIRepository's spec.verify too)")
	g.Expect(r.Migrated).To(Equal(12))

	// Every Kustomization of the repository itself (the flux-system GitRepository that
	// bootstrap makes) builds to what Flux builds, with Plumb's apiVersions.
	built := 0
	for _, cluster := range []string{"production", "staging"} {
		for _, f := range []string{"infrastructure.yaml", "tenants.yaml"} {
			b, err := os.ReadFile(filepath.Join(repo, "clusters", cluster, f))
			g.Expect(err).NotTo(HaveOccurred())
			for _, o := range parseYAML(g, string(b)) {
				g.Expect(o.GetAPIVersion()).To(Equal("apply.plumb.dev/v1beta1"))
				spec := o.Object["spec"].(map[string]any)
				if spec["sourceRef"].(map[string]any)["name"] != "flux-system" {
					continue
				}
				p := spec["path"].(string)
				res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(memFS(g, orig, "/repo"), path.Join("/repo", p))
				g.Expect(err).NotTo(HaveOccurred())
				out, err := res.AsYaml()
				g.Expect(err).NotTo(HaveOccurred())
				want := parseYAML(g, fluxToPlumb.Replace(string(out)))
				got := plumbKustomization(g, repo, o.Object)
				g.Expect(want).NotTo(BeEmpty())
				g.Expect(byID(got)).To(Equal(byID(want)), p)
				built++
			}
		}
	}
	g.Expect(built).To(Equal(6))
	g.Expect(bytes.Contains([]byte(read(g, repo, "tenants/production/dev-team-patch.yaml")), []byte("apiVersion: apply.plumb.dev/v1beta1"))).To(BeTrue())
}
