package controller

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/registry"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plumb-dev/plumb/shared/artifact"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/helm/helmtest"
)

func newHelmChart(ns, chartName, kind, source string, mutate ...func(*sourcev1.HelmChart)) *sourcev1.HelmChart {
	obj := &sourcev1.HelmChart{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "chart-", Namespace: ns},
		Spec: sourcev1.HelmChartSpec{
			Chart:     chartName,
			SourceRef: sourcev1.LocalHelmChartSourceReference{Kind: kind, Name: source},
			Interval:  metav1.Duration{Duration: time.Hour},
		},
	}
	for _, m := range mutate {
		m(obj)
	}
	return obj
}

// loadChart downloads the HelmChart's artifact as helm-controller would and loads it.
func loadChart(g *WithT, a *meta.Artifact) *chart.Chart {
	data, err := (&artifact.Fetcher{}).Fetch(context.Background(), a)
	g.Expect(err).NotTo(HaveOccurred())
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	g.Expect(err).NotTo(HaveOccurred())
	return ch
}

// readyHelmRepository creates a HelmRepository for srv and waits for its index.
func readyHelmRepository(t *testing.T, g *WithT, ns string, srv *helmtest.Server) *sourcev1.HelmRepository {
	t.Helper()
	repo := newHelmRepository(ns, srv.URL, chartSecret(t, ns, chartUser, chartPassword))
	create(g, repo)
	waitIndexReady(g, repo)
	return repo
}

func TestHelmChart_FromHelmRepository(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	srv := chartRepo(t, "1.0.0", "1.1.0", "2.0.0")
	repo := readyHelmRepository(t, g, ns, srv)

	obj := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) { c.Spec.Version = "1.x" })
	create(g, obj)
	waitReady(g, obj, "1.1.0")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(Equal("packaged chart web 1.1.0"))
	ch := loadChart(g, obj.Status.Artifact)
	g.Expect(ch.Metadata.Version).To(Equal("1.1.0"))
	g.Expect(ch.Values).To(HaveKeyWithValue("greeting", "hello"))

	// Nothing new: no download.
	downloads := srv.Downloads.Load()
	v := requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(srv.Downloads.Load()).To(Equal(downloads))

	// A new version in range: the HelmRepository's new index triggers the HelmChart.
	addCharts(t, srv, "1.2.0")
	requestReconcile(g, repo)
	waitReady(g, obj, "1.2.0")

	// Values files merged into the package.
	prod := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) {
		c.Spec.ValuesFiles = []string{"values.yaml", "values-prod.yaml", "values-missing.yaml"}
		c.Spec.IgnoreMissingValuesFiles = true
	})
	create(g, prod)
	waitReady(g, prod, "2.0.0")
	g.Expect(prod.Status.ObservedValuesFiles).To(Equal([]string{"values.yaml", "values-prod.yaml"}))
	ch = loadChart(g, prod.Status.Artifact)
	g.Expect(ch.Values).To(HaveKeyWithValue("greeting", "hello prod"))
	g.Expect(ch.Values).To(HaveKeyWithValue("replicas", BeNumerically("==", 3)))

	cases := []struct {
		name   string
		mutate func(*sourcev1.HelmChart)
		reason string
		msg    string
	}{
		{"no version in range", func(c *sourcev1.HelmChart) { c.Spec.Version = ">=3" }, sourcev1.NoMatchingVersionReason,
			`no version of chart "web" matches ">=3"; highest versions: 2.0.0, 1.2.0, 1.1.0, 1.0.0`},
		{"chart not in the index", func(c *sourcev1.HelmChart) { c.Spec.Chart = "api" }, sourcev1.NoMatchingVersionReason,
			`chart "api" is not in the repository's index`},
		{"missing values file", func(c *sourcev1.HelmChart) { c.Spec.ValuesFiles = []string{"values-staging.yaml"} }, sourcev1.ChartPackageFailedReason,
			`web has no values file "values-staging.yaml"`},
		{"missing source", func(c *sourcev1.HelmChart) { c.Spec.SourceRef.Name = "absent" }, sourcev1.SourceNotReadyReason,
			"HelmRepository " + ns + "/absent not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			o := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, c.mutate)
			create(g, o)
			g.Expect(waitFailed(g, o, c.reason)).To(ContainSubstring(c.msg))
		})
	}
}

func TestHelmChart_FromGitWithDependencies(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	srv := chartRepo(t, "1.0.0")
	readyHelmRepository(t, g, ns, srv)
	reg := newRegistry(t, nil)
	pushChart(t, reg.Host+"/charts/db", "2.0.0", "2.1.0")
	// The registry of the oci:// dependency, known by its URL (the test registry speaks plain HTTP).
	charts := newHelmRepository(ns, "oci://"+reg.Host+"/charts", "")
	charts.Spec.Type, charts.Spec.Insecure = sourcev1.HelmRepositoryTypeOCI, true
	create(g, charts)

	chartYAML := "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n" +
		"- name: lib\n  version: 0.1.0\n  repository: file://../lib\n" +
		"- name: web\n  version: 1.x\n  repository: " + srv.URL + "\n" +
		"- name: db\n  version: ~2.0\n  repository: oci://" + reg.Host + "/charts\n"
	files := map[string]string{
		"charts/app/Chart.yaml":                chartYAML,
		"charts/app/values.yaml":               "replicas: 1\n",
		"charts/app/templates/configmap.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
		"charts/lib/Chart.yaml":                "apiVersion: v2\nname: lib\nversion: 0.1.0\ntype: library\n",
		"charts/lib/templates/_helpers.tpl":    "{{- define \"lib.name\" -}}lib{{- end -}}\n",
		"charts/broken/Chart.yaml":             "apiVersion: v2\nname: broken\n",
		"charts/broken/templates/nothing.yaml": "# nothing\n",
	}
	_, gr := readyGitRepository(t, g, ns, files)

	obj := newHelmChart(ns, "./charts/app", sourcev1.GitRepositoryKind, gr.Name, func(c *sourcev1.HelmChart) {
		c.Spec.ReconcileStrategy = sourcev1.ReconcileStrategyRevision
	})
	create(g, obj)
	short := gr.Status.Artifact.Revision[len("main@sha1:") : len("main@sha1:")+12]
	waitReady(g, obj, "0.1.0+"+short)
	g.Expect(obj.Status.ObservedSourceArtifactRevision).To(Equal(gr.Status.Artifact.Revision))
	ch := loadChart(g, obj.Status.Artifact)
	var deps []string
	for _, d := range ch.Dependencies() {
		deps = append(deps, d.Name()+"@"+d.Metadata.Version)
	}
	g.Expect(deps).To(ConsistOf("lib@0.1.0", "web@1.0.0", "db@2.0.0"), "every dependency vendored")

	// The same content packaged twice gives the same digest.
	again := newHelmChart(ns, "./charts/app", sourcev1.GitRepositoryKind, gr.Name, func(c *sourcev1.HelmChart) {
		c.Spec.ReconcileStrategy = sourcev1.ReconcileStrategyRevision
	})
	create(g, again)
	waitReady(g, again, "0.1.0+"+short)
	g.Expect(again.Status.Artifact.Digest).To(Equal(obj.Status.Artifact.Digest))

	// A spec that leaves the artifact stalls, and a later reconcile does not take the artifact
	// of the old spec for the new one.
	get(g, again)
	again.Spec.Chart = "../outside"
	g.Expect(k8s.Update(context.Background(), again)).To(Succeed())
	g.Expect(waitFailed(g, again, sourcev1.InvalidSpecReason)).To(ContainSubstring("leaves the artifact"))
	v := requestReconcile(g, again)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, again).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.GetReason(again, meta.ReadyCondition)).To(Equal(sourcev1.InvalidSpecReason))

	broken := newHelmChart(ns, "charts/broken", sourcev1.GitRepositoryKind, gr.Name)
	create(g, broken)
	g.Expect(waitFailed(g, broken, sourcev1.ChartPackageFailedReason)).To(ContainSubstring("version"))

	missing := newHelmChart(ns, "charts/nowhere", sourcev1.GitRepositoryKind, gr.Name)
	create(g, missing)
	g.Expect(waitFailed(g, missing, sourcev1.ChartPackageFailedReason)).To(ContainSubstring("charts/nowhere of GitRepository " + gr.Name + " has no Chart.yaml"))
}

func TestHelmChart_FromOCIHelmRepository(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := newRegistry(t, nil)
	pushChart(t, reg.Host+"/charts/web", "1.0.0", "1.1.0", "2.0.0")
	repo := newHelmRepository(ns, "oci://"+reg.Host+"/charts", "")
	repo.Spec.Type = sourcev1.HelmRepositoryTypeOCI
	repo.Spec.Insecure = true // the test registry speaks plain HTTP
	create(g, repo)

	obj := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) { c.Spec.Version = "1.x" })
	create(g, obj)
	waitReady(g, obj, "1.1.0")
	g.Expect(loadChart(g, obj.Status.Artifact).Metadata.Version).To(Equal("1.1.0"))

	// An exact version, with build metadata (pushed as the tag 2.0.1_build.5).
	pushChart(t, reg.Host+"/charts/web", "2.0.1+build.5")
	exact := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) { c.Spec.Version = "2.0.1+build.5" })
	create(g, exact)
	waitReady(g, exact, "2.0.1+build.5")
}

// pushChart pushes versions of a chart named after the repository's last element, as `helm
// push` does, with the Helm SDK's registry client.
func pushChart(t *testing.T, repo string, versions ...string) {
	t.Helper()
	pushChartWith(t, nil, repo, versions...)
}

// pushChartWith pushes as pushChart does, with more options of the registry client (such as
// credentials).
func pushChartWith(t *testing.T, opts []registry.ClientOption, repo string, versions ...string) {
	t.Helper()
	rc, err := registry.NewClient(append([]registry.ClientOption{registry.ClientOptPlainHTTP()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	name := repo[strings.LastIndex(repo, "/")+1:]
	for _, v := range versions {
		path, err := helmtest.Package(t.TempDir(), helmtest.Chart(name, v))
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Push(data, repo+":"+v); err != nil {
			t.Fatal(err)
		}
	}
}
