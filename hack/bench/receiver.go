package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// benchReceiver: n pushes to a small repository, each announced by a Receiver webhook; the
// time from the webhook call to the new value in the cluster (Git fetched, artifact stored,
// Kustomization applied), with intervals of an hour so that only the webhook drives it.
func benchReceiver(ctx context.Context, n int) ([]Metric, error) {
	if n < 1 {
		return nil, fmt.Errorf("receiver: at least one push")
	}
	bed, err := local.StartBed("plumb-bench-receiver-", false)
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
	app := func(v int) map[string]string {
		return map[string]string{"app/configmap.yaml": fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  version: \"%d\"\n", v)}
	}
	repo, _, err := git.NewRepo("app", app(0))
	if err != nil {
		return nil, err
	}
	if _, err := bed.StartSourceController(); err != nil {
		return nil, err
	}
	if _, err := bed.StartController("apply-controller"); err != nil {
		return nil, err
	}
	addr, err := local.FreeAddr()
	if err != nil {
		return nil, err
	}
	if _, err := bed.StartController("notification-controller", "--receiver-addr", addr, "--provider-allow-cidr=127.0.0.1/32"); err != nil {
		return nil, err
	}
	ns := "bench"
	hour := metav1.Duration{Duration: time.Hour}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns}, StringData: map[string]string{"token": "bench-token"}},
		&sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Spec: sourcev1.GitRepositorySpec{URL: git.URL("app"), Interval: hour}},
		&applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Spec: applyv1.KustomizationSpec{
			SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path:      "app", TargetNamespace: ns, Prune: true, Interval: hour, RetryInterval: &hour}},
		&notifyv1.Receiver{ObjectMeta: metav1.ObjectMeta{Name: "push", Namespace: ns}, Spec: notifyv1.ReceiverSpec{
			Type: notifyv1.GenericReceiver, SecretRef: &meta.LocalObjectReference{Name: "hook"},
			Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: sourcev1.GitRepositoryKind, Name: "app"}}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			return nil, err
		}
	}
	// The applied value is followed with a watch: the time it arrives, not a poll's.
	wc, err := client.NewWithWatch(bed.Env.Config, client.Options{})
	if err != nil {
		return nil, err
	}
	w, err := wc.Watch(ctx, &corev1.ConfigMapList{}, client.InNamespace(ns), client.MatchingFields{"metadata.name": "app"})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	waitFor := func(want string, limit time.Duration) error {
		deadline := time.After(limit)
		for {
			select {
			case e, ok := <-w.ResultChan():
				if !ok {
					return fmt.Errorf("watch of the applied ConfigMap ended")
				}
				if cm, ok := e.Object.(*corev1.ConfigMap); ok && cm.Data["version"] == want {
					return nil
				}
			case <-deadline:
				return fmt.Errorf("version %s not applied after %s", want, limit)
			}
		}
	}
	if err := waitFor("0", 2*time.Minute); err != nil {
		return nil, err
	}
	rcv := &notifyv1.Receiver{}
	for deadline := time.Now().Add(time.Minute); rcv.Status.WebhookPath == ""; time.Sleep(50 * time.Millisecond) {
		if err := c.Get(ctx, clientKey(ns, "push"), rcv); err != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("receiver not ready: %v", err)
		}
	}
	var took []time.Duration
	for i := 1; i <= n; i++ {
		if _, err := repo.Commit(fmt.Sprintf("version %d", i), app(i)); err != nil {
			return nil, err
		}
		start := time.Now()
		resp, err := http.Post("http://"+addr+rcv.Status.WebhookPath, "application/json", strings.NewReader(`{}`))
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("webhook answered %s", resp.Status)
		}
		if err := waitFor(fmt.Sprint(i), time.Minute); err != nil {
			return nil, err
		}
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var f figures
	f.add("webhook_to_applied_p50", "webhook call to the new value applied, p50", ms(took[len(took)/2]), 1, "ms", Lower)
	f.add("webhook_to_applied_max", "webhook call to the new value applied, max", ms(took[len(took)-1]), 1, "ms", Lower)
	writeTable(os.Stdout, fmt.Sprintf("receiver: %d pushes announced by a webhook (%d CPUs, %s)", n, runtime.NumCPU(), runtime.GOARCH), f)
	return f, nil
}
