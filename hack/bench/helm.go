package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"net/http"
	"path/filepath"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/hack/internal/local"
	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// benchHelm: n HelmReleases of one small chart (a Deployment scaled to 0, a Service and a
// ServiceAccount, the flux-benchmark shape) from one HelmChart; cold start to all Ready, then a
// no-op round that must not write to Helm's storage.
func benchHelm(ctx context.Context, n, concurrent int, profile string) ([]Metric, error) {
	dir, err := os.MkdirTemp("", "plumb-bench-helm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	if err := writeBenchChart(dir, srv.URL); err != nil {
		return nil, err
	}

	bed, err := local.StartBed("plumb-bench-helm-", true)
	if err != nil {
		return nil, err
	}
	defer bed.Stop()
	c := bed.Env.Client
	if _, err := bed.StartSourceController(); err != nil {
		return nil, err
	}
	pprofAddr, err := local.FreeAddr()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := local.FreeAddr()
	if err != nil {
		return nil, err
	}
	hc, err := bed.StartController("helm-controller", "--pprof-addr", pprofAddr, "--metrics-addr", metricsAddr, fmt.Sprintf("--concurrent=%d", concurrent))
	if err != nil {
		return nil, err
	}
	ns := "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	reqStart, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	if err := c.Create(ctx, &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns},
		Spec:       sourcev1.HelmRepositorySpec{URL: srv.URL, Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		return nil, err
	}
	if err := c.Create(ctx, &sourcev1.HelmChart{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: ns},
		Spec: sourcev1.HelmChartSpec{Chart: "bench", SourceRef: sourcev1.LocalHelmChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"},
			Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		return nil, err
	}
	for i := range n {
		if err := c.Create(ctx, &helmv1.HelmRelease{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i), Namespace: ns},
			Spec: helmv1.HelmReleaseSpec{
				ChartRef: &helmv1.CrossNamespaceSourceReference{Kind: sourcev1.HelmChartKind, Name: "bench"},
				Interval: metav1.Duration{Duration: time.Hour},
				Timeout:  &metav1.Duration{Duration: 3 * time.Minute},
			},
		}); err != nil {
			return nil, err
		}
	}
	items := func(l *helmv1.HelmReleaseList) []helmv1.HelmRelease { return l.Items }
	if err := waitAll(ctx, c, ns, n, 15*time.Minute, items, func(o *helmv1.HelmRelease) bool {
		return ready(o.Status.Conditions) && o.Status.ObservedGeneration == o.Generation
	}); err != nil {
		return nil, err
	}
	coldReady := time.Since(begin)
	cpuCold, _ := hc.CPU()
	rssCold, _ := hc.PeakRSS()
	reqCold, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}

	before, err := releaseSecrets(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	round, err := noopRound(ctx, c, hc, pprofAddr, profile, 3*time.Second, ns, n, 10*time.Minute, func(i int) client.Object {
		return &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i), Namespace: ns}}
	}, items, func(o *helmv1.HelmRelease) string { return o.Status.LastHandledReconcileAt })
	if err != nil {
		return nil, err
	}
	reqNoop, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	rss, _ := hc.PeakRSS()
	after, err := releaseSecrets(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	written := 0
	for k, v := range after {
		if before[k] != v {
			written++
		}
	}

	var f figures
	f.add("cold_ready", "cold start to all Ready (installed, waited for)", coldReady.Seconds(), 2, "s", Lower)
	f.add("cold_cpu", "helm-controller CPU, cold start", cpuCold.Seconds(), 2, "CPU s", Lower)
	f.coldRequests(reqCold.minus(reqStart), n)
	f.add("cold_peak_rss", "helm-controller peak RSS, cold start", rssCold, 1, "MiB", Lower)
	f.add("noop_round", "no-op round, request to all handled", round.wall.Seconds(), 2, "s", Lower)
	f.add("noop_cpu_per_reconcile", "helm-controller CPU per no-op reconcile", round.perReconcile(), 3, "CPU ms/reconcile", Lower)
	f.noopRequests(reqNoop.minus(reqCold), n)
	f.add("noop_release_secrets_written", fmt.Sprintf("Helm release Secrets written during the no-op round (of %d)", len(after)), float64(written), 0, "count", Lower)
	f.add("peak_rss", "helm-controller peak RSS", rss, 1, "MiB", Lower)
	writeTable(os.Stdout, fmt.Sprintf("helm: %d HelmReleases of one chart (%d CPUs, %s, --concurrent=%d)", n, runtime.NumCPU(), runtime.GOARCH, concurrent), f)
	return f, nil
}

// releaseSecrets maps Helm's release Secrets of a namespace to their resource versions.
func releaseSecrets(ctx context.Context, c client.Client, ns string) (map[string]string, error) {
	var list corev1.SecretList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"owner": "helm"}); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Name] = s.ResourceVersion
	}
	return out, nil
}

// writeBenchChart packages the benchmark chart and indexes it with the Helm SDK.
func writeBenchChart(dir, url string) error {
	ch := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "bench", Version: "1.0.0", AppVersion: "1.0.0"},
		Templates: []*chart.File{
			{Name: "templates/deployment.yaml", Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 0
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      serviceAccountName: {{ .Release.Name }}
      containers:
        - name: app
          image: registry.example.invalid/app:1.0.0
`)},
			{Name: "templates/service.yaml", Data: []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  selector: {app: {{ .Release.Name }}}\n  ports: [{port: 80}]\n")},
			{Name: "templates/serviceaccount.yaml", Data: []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ .Release.Name }}\n")},
		},
	}
	if _, err := chartutil.Save(ch, dir); err != nil {
		return err
	}
	idx, err := repo.IndexDirectory(dir, url)
	if err != nil {
		return err
	}
	return idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644)
}
