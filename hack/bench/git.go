package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/hack/internal/local"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// benchGit: n GitRepositories on one loopback repository, cold start to all Ready, then one
// no-op reconcile each.
func benchGit(ctx context.Context, n int, profile string) ([]Metric, error) {
	bed, err := local.StartBed("plumb-bench-git-", false)
	if err != nil {
		return nil, err
	}
	defer bed.Stop()
	c := bed.Env.Client

	git, err := local.StartGitServer("")
	if err != nil {
		return nil, err
	}
	defer git.Stop()
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("apps/app-%02d/configmap.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%02d\ndata:\n  key: value\n", i)
	}
	if _, _, err := git.NewRepo("apps", files); err != nil {
		return nil, err
	}
	url := git.URL("apps")
	fetches := &git.Fetches

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
	for i := range n {
		obj := &sourcev1.GitRepository{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("repo-%04d", i), Namespace: ns.Name},
			Spec:       sourcev1.GitRepositorySpec{URL: url, Interval: metav1.Duration{Duration: time.Hour}},
		}
		if err := c.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	if err := waitAll(ctx, c, ns.Name, n, 5*time.Minute, func(l *sourcev1.GitRepositoryList) []sourcev1.GitRepository { return l.Items }, func(o *sourcev1.GitRepository) bool {
		return ready(o.Status.Conditions) && o.Status.Artifact != nil
	}); err != nil {
		return nil, err
	}
	coldReady := time.Since(begin)
	coldFetches := fetches.Load()
	cpuCold, _ := p.CPU()
	reqCold, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}

	round, err := noopRound(ctx, c, p, pprofAddr, profile, 2*time.Second, ns.Name, n, 5*time.Minute, func(i int) client.Object {
		return &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("repo-%04d", i), Namespace: ns.Name}}
	}, func(l *sourcev1.GitRepositoryList) []sourcev1.GitRepository { return l.Items }, func(o *sourcev1.GitRepository) string { return o.Status.LastHandledReconcileAt })
	if err != nil {
		return nil, err
	}
	reqNoop, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	rss, _ := p.PeakRSS()
	noopFetches := fetches.Load() - coldFetches

	var f figures
	f.add("cold_ready", "cold start to all Ready", coldReady.Seconds(), 3, "s", Lower)
	f.add("cold_fetches", "fetches (git-upload-pack) during cold start", float64(coldFetches), 0, "count", Lower)
	f.add("cold_cpu", "controller CPU, cold start (process start included)", cpuCold.Seconds(), 2, "CPU s", Lower)
	f.coldRequests(reqCold.minus(reqStart), n)
	f.add("noop_round", "no-op round, request to all handled", round.wall.Seconds(), 3, "s", Lower)
	f.add("noop_cpu_per_reconcile", "controller CPU per no-op reconcile", round.perReconcile(), 3, "CPU ms/reconcile", Lower)
	f.noopRequests(reqNoop.minus(reqCold), n)
	f.add("noop_fetches", "fetches during the no-op round", float64(noopFetches), 0, "count", Lower)
	f.add("peak_rss", "controller peak RSS", rss, 1, "MiB", Lower)
	writeTable(os.Stdout, fmt.Sprintf("git: %d GitRepositories on one repository (%d CPUs, %s)", n, runtime.NumCPU(), runtime.GOARCH), f)
	return f, nil
}
