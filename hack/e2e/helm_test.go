//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/hack/internal/local"
	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// publishChart packages a version of the chart web into dir and indexes dir with the Helm SDK.
func publishChart(g *WithT, dir, url, version string) {
	ch := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "web", Version: version, AppVersion: version},
		Templates: []*chart.File{{Name: "templates/configmap.yaml",
			Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  version: {{ .Chart.Version | quote }}\n  greeting: {{ .Values.greeting | quote }}\n")}},
		Values: map[string]any{"greeting": "hello"},
		Raw:    []*chart.File{{Name: "values.yaml", Data: []byte("greeting: hello\n")}},
	}
	g.Expect(local.PublishChart(dir, url, ch)).To(Succeed())
}

// pushOCIChart packages a version of the chart web and pushes it to host/charts/web with the
// Helm SDK, as `helm push` does; it returns the manifest digest.
func pushOCIChart(g *WithT, t *testing.T, host, version string) string {
	rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP())
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	publishChart(g, dir, "http://unused.invalid", version)
	data, err := os.ReadFile(filepath.Join(dir, "web-"+version+".tgz"))
	g.Expect(err).NotTo(HaveOccurred())
	res, err := rc.Push(data, host+"/charts/web:"+version)
	g.Expect(err).NotTo(HaveOccurred())
	return res.Manifest.Digest
}

// A chart repository to the cluster through the built controllers: HelmRepository, the HelmChart
// a HelmRelease's spec.chart makes, and the release; a new chart version flows through all three
// with one reconcile request on the HelmRepository (as a webhook would make).
func TestHelmRepositoryToCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	publishChart(g, dir, srv.URL, "1.0.0")

	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "helm"}})).To(Succeed())
	hrepo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: "helm"},
		Spec:       sourcev1.HelmRepositorySpec{URL: srv.URL, Interval: metav1.Duration{Duration: time.Hour}},
	}
	g.Expect(c.Create(ctx, hrepo)).To(Succeed())
	hr := &helmv1.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "helm"},
		Spec: helmv1.HelmReleaseSpec{
			Chart: &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{
				Chart: "web", Version: "1.x",
				SourceRef: helmv1.LocalChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"},
			}},
			Values:   &apiextensionsv1.JSON{Raw: []byte(`{"greeting":"from e2e"}`)},
			Interval: metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(c.Create(ctx, hr)).To(Succeed())
	released := func(version string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
			g.Expect(conditions.IsReady(hr)).To(BeTrue(), "Ready: %s", conditions.GetMessage(hr, meta.ReadyCondition))
			g.Expect(hr.Status.History).NotTo(BeEmpty())
			g.Expect(hr.Status.History[0].ChartVersion).To(Equal(version))
			cm := &corev1.ConfigMap{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "helm", Name: "web"}, cm)).To(Succeed())
			g.Expect(cm.Data).To(Equal(map[string]string{"version": version, "greeting": "from e2e"}))
		}, timeout, 200*time.Millisecond).Should(Succeed())
	}
	released("1.0.0")

	publishChart(g, dir, srv.URL, "1.1.0")
	request(g, hrepo)
	released("1.1.0")
}

// A chart from an OCI registry, pushed with the Helm SDK as `helm push` does, released through the
// built controllers: an OCI HelmRepository, the HelmChart of the HelmRelease's template, the
// release; a new version reaches the cluster through a reconcile request on the HelmChart.
func TestOCIChartToCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	push := func(version string) { pushOCIChart(g, t, reg.Host, version) }
	push("1.0.0")

	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "helm-oci"}})).To(Succeed())
	g.Expect(c.Create(ctx, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: "helm-oci"},
		Spec: sourcev1.HelmRepositorySpec{Type: sourcev1.HelmRepositoryTypeOCI, URL: "oci://" + reg.Host + "/charts", Insecure: true,
			Interval: metav1.Duration{Duration: time.Hour}}})).To(Succeed())
	hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "helm-oci"},
		Spec: helmv1.HelmReleaseSpec{
			Chart: &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{Chart: "web", Version: "1.x",
				SourceRef: helmv1.LocalChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}}},
			Values:   &apiextensionsv1.JSON{Raw: []byte(`{"greeting":"from an OCI chart"}`)},
			Interval: metav1.Duration{Duration: time.Hour},
		}}
	g.Expect(c.Create(ctx, hr)).To(Succeed())
	released := func(version string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
			g.Expect(conditions.IsReady(hr)).To(BeTrue(), "Ready: %s", conditions.GetMessage(hr, meta.ReadyCondition))
			g.Expect(hr.Status.History).NotTo(BeEmpty())
			g.Expect(hr.Status.History[0].ChartVersion).To(Equal(version))
			cm := &corev1.ConfigMap{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "helm-oci", Name: "web"}, cm)).To(Succeed())
			g.Expect(cm.Data).To(Equal(map[string]string{"version": version, "greeting": "from an OCI chart"}))
		}, timeout, 200*time.Millisecond).Should(Succeed())
	}
	released("1.0.0")

	push("1.1.0")
	chart := &sourcev1.HelmChart{}
	g.Eventually(func(g Gomega) {
		var charts sourcev1.HelmChartList
		g.Expect(c.List(ctx, &charts, client.InNamespace("helm-oci"))).To(Succeed())
		g.Expect(charts.Items).To(HaveLen(1))
		*chart = charts.Items[0]
	}, timeout, 200*time.Millisecond).Should(Succeed())
	request(g, chart)
	released("1.1.0")
}
