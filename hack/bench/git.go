package main

import (
	"context"
	"fmt"
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
func benchGit(ctx context.Context, n int, profile string) error {
	bed, err := local.StartBed("plumb-bench-git-", false)
	if err != nil {
		return err
	}
	defer bed.Stop()
	c := bed.Env.Client

	git, err := local.StartGitServer("")
	if err != nil {
		return err
	}
	defer git.Stop()
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("apps/app-%02d/configmap.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%02d\ndata:\n  key: value\n", i)
	}
	if _, _, err := git.NewRepo("apps", files); err != nil {
		return err
	}
	url := git.URL("apps")
	fetches := &git.Fetches

	pprofAddr, err := local.FreeAddr()
	if err != nil {
		return err
	}
	p, err := bed.StartSourceController("--pprof-addr", pprofAddr)
	if err != nil {
		return err
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}
	if err := c.Create(ctx, ns); err != nil {
		return err
	}
	begin := time.Now()
	for i := range n {
		obj := &sourcev1.GitRepository{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("repo-%04d", i), Namespace: ns.Name},
			Spec:       sourcev1.GitRepositorySpec{URL: url, Interval: metav1.Duration{Duration: time.Hour}},
		}
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
	}
	if err := waitAll(ctx, c, ns.Name, n, 5*time.Minute, func(l *sourcev1.GitRepositoryList) []sourcev1.GitRepository { return l.Items }, func(o *sourcev1.GitRepository) bool {
		return ready(o.Status.Conditions) && o.Status.Artifact != nil
	}); err != nil {
		return err
	}
	coldReady := time.Since(begin)
	coldFetches := fetches.Load()
	cpuCold, _ := p.CPU()

	round, err := noopRound(ctx, c, p, pprofAddr, profile, 2*time.Second, ns.Name, n, 5*time.Minute, func(i int) client.Object {
		return &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("repo-%04d", i), Namespace: ns.Name}}
	}, func(l *sourcev1.GitRepositoryList) []sourcev1.GitRepository { return l.Items }, func(o *sourcev1.GitRepository) string { return o.Status.LastHandledReconcileAt })
	if err != nil {
		return err
	}
	rss, _ := p.PeakRSS()
	noopFetches := fetches.Load() - coldFetches

	fmt.Printf("\n### git: %d GitRepositories on one repository (%d CPUs, %s)\n\n", n, runtime.NumCPU(), runtime.GOARCH)
	fmt.Printf("| figure | value |\n|---|---|\n")
	fmt.Printf("| cold start to all Ready | %.2f s |\n", coldReady.Seconds())
	fmt.Printf("| fetches (git-upload-pack) during cold start | %d |\n", coldFetches)
	fmt.Printf("| controller CPU, cold start | %.2f s |\n", cpuCold.Seconds())
	fmt.Printf("| no-op round, request to all handled | %.2f s |\n", round.wall.Seconds())
	fmt.Printf("| controller CPU per no-op reconcile | %.2f ms |\n", round.perReconcile())
	fmt.Printf("| fetches during the no-op round | %d |\n", noopFetches)
	fmt.Printf("| controller peak RSS | %.0f MiB |\n", rss)
	return nil
}
