package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/hack/internal/local"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// benchHelmChart: n HelmCharts from one HelmRepository whose index lists charts×versions chart
// versions (the highest of each chart packaged and served); cold start to all Ready, then one
// no-op reconcile each.
func benchHelmChart(ctx context.Context, n, charts, versions int, profile string) ([]Metric, error) {
	dir, err := os.MkdirTemp("", "plumb-bench-charts-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var downloads atomic.Int64
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".tgz") {
			downloads.Add(1)
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	if err := writeChartRepo(dir, srv.URL, charts, versions); err != nil {
		return nil, err
	}

	bed, err := local.StartBed("plumb-bench-helmchart-", false)
	if err != nil {
		return nil, err
	}
	defer bed.Stop()
	c := bed.Env.Client
	pprofAddr, err := local.FreeAddr()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := local.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := bed.StartSourceController("--pprof-addr", pprofAddr, "--metrics-addr", metricsAddr)
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}
	if err := c.Create(ctx, ns); err != nil {
		return nil, err
	}
	reqStart, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	hr := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns.Name},
		Spec:       sourcev1.HelmRepositorySpec{URL: srv.URL, Interval: metav1.Duration{Duration: time.Hour}},
	}
	if err := c.Create(ctx, hr); err != nil {
		return nil, err
	}
	for i := range n {
		obj := &sourcev1.HelmChart{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("chart-%04d", i), Namespace: ns.Name},
			Spec: sourcev1.HelmChartSpec{
				Chart:     fmt.Sprintf("app-%03d", i%charts),
				Version:   "*",
				SourceRef: sourcev1.LocalHelmChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: hr.Name},
				Interval:  metav1.Duration{Duration: time.Hour},
			},
		}
		if err := c.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	items := func(l *sourcev1.HelmChartList) []sourcev1.HelmChart { return l.Items }
	if err := waitAll(ctx, c, ns.Name, n, 5*time.Minute, items, func(o *sourcev1.HelmChart) bool {
		return ready(o.Status.Conditions) && o.Status.Artifact != nil
	}); err != nil {
		return nil, err
	}
	coldReady := time.Since(begin)
	coldDownloads := downloads.Load()
	cpuCold, _ := p.CPU()
	reqCold, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}

	round, err := noopRound(ctx, c, p, pprofAddr, profile, 2*time.Second, ns.Name, n, 5*time.Minute, func(i int) client.Object {
		return &sourcev1.HelmChart{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("chart-%04d", i), Namespace: ns.Name}}
	}, items, func(o *sourcev1.HelmChart) string { return o.Status.LastHandledReconcileAt })
	if err != nil {
		return nil, err
	}
	reqNoop, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	rss, _ := p.PeakRSS()
	loads, err := scrapeCounter("http://"+metricsAddr+"/metrics", "plumb_helm_index_loads_total")
	if err != nil {
		return nil, err
	}

	var f figures
	f.add("cold_ready", "cold start to all Ready (index included)", coldReady.Seconds(), 3, "s", Lower)
	f.add("cold_chart_downloads", "chart downloads during cold start", float64(coldDownloads), 0, "count", Lower)
	f.add("index_loads", "index parses for HelmCharts, whole run", loads, 0, "count", Lower)
	f.add("cold_cpu", "controller CPU, cold start", cpuCold.Seconds(), 2, "CPU s", Lower)
	f.coldRequests(reqCold.minus(reqStart), n)
	f.add("noop_round", "no-op round, request to all handled", round.wall.Seconds(), 3, "s", Lower)
	f.add("noop_cpu_per_reconcile", "controller CPU per no-op reconcile", round.perReconcile(), 3, "CPU ms/reconcile", Lower)
	f.noopRequests(reqNoop.minus(reqCold), n)
	f.add("noop_chart_downloads", "chart downloads during the no-op round", float64(downloads.Load()-coldDownloads), 0, "count", Lower)
	f.add("peak_rss", "controller peak RSS", rss, 1, "MiB", Lower)
	writeTable(os.Stdout, fmt.Sprintf("helmchart: %d HelmCharts from one HelmRepository of %d chart versions (%d CPUs, %s)", n, charts*versions, runtime.NumCPU(), runtime.GOARCH), f)
	return f, nil
}

// writeChartRepo writes an index.yaml with the Helm SDK listing charts×versions versions, and
// packages the highest version of each chart.
func writeChartRepo(dir, url string, charts, versions int) error {
	idx := repo.NewIndexFile()
	for c := range charts {
		name := fmt.Sprintf("app-%03d", c)
		for v := range versions {
			md := &chart.Metadata{APIVersion: chart.APIVersionV2, Name: name, Version: fmt.Sprintf("1.%d.0", v),
				Description: "A benchmark chart with a description of some length, as real ones have.", AppVersion: "1.0.0"}
			if err := idx.MustAdd(md, fmt.Sprintf("%s-%s.tgz", name, md.Version), url, ""); err != nil {
				return err
			}
			if v == versions-1 {
				ch := &chart.Chart{
					Metadata: md,
					Templates: []*chart.File{{Name: "templates/configmap.yaml",
						Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n")}},
				}
				if _, err := chartutil.Save(ch, dir); err != nil {
					return err
				}
			}
		}
	}
	idx.SortEntries()
	return idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644)
}

// scrapeCounter reads one counter from a Prometheus text endpoint.
func scrapeCounter(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s not in %s", name, url)
}
