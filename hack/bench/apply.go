package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// benchApply: n Kustomizations, each an app of the public flux-benchmark's shape (Deployment
// scaled to 0, Service, ServiceAccount, ConfigMap), from one GitRepository; cold start to all
// Ready (health checked), then a no-op round. With encrypt, each app's ConfigMap is
// SOPS-encrypted for an age key (before the clock starts) and every Kustomization decrypts it
// with the key from a Secret.
func benchApply(ctx context.Context, n, concurrent int, encrypt bool, profile string) ([]Metric, error) {
	bed, err := local.StartBed("plumb-bench-apply-", true)
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
	var enc *sopsEncrypter
	if encrypt {
		if enc, err = newSOPSEncrypter(); err != nil {
			return nil, err
		}
	}
	files := map[string]string{}
	for i := range n {
		for name, content := range benchApp(fmt.Sprintf("app-%04d", i)) {
			if enc != nil && name == "configmap.yaml" {
				if content, err = enc.encrypt(content); err != nil {
					return nil, fmt.Errorf("encrypting %s of app-%04d: %w", name, i, err)
				}
			}
			files[fmt.Sprintf("apps/app-%04d/%s", i, name)] = content
		}
	}
	if _, _, err := git.NewRepo("apps", files); err != nil {
		return nil, err
	}

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
	ac, err := bed.StartController("apply-controller", "--pprof-addr", pprofAddr, "--metrics-addr", metricsAddr, fmt.Sprintf("--concurrent=%d", concurrent))
	if err != nil {
		return nil, err
	}

	ns := "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	var decryption *applyv1.Decryption
	if enc != nil {
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sops-age", Namespace: ns},
			Data: map[string][]byte{"age.agekey": []byte(enc.identity + "\n")}}); err != nil {
			return nil, err
		}
		decryption = &applyv1.Decryption{Provider: applyv1.DecryptionProviderSOPS, SecretRef: &meta.LocalObjectReference{Name: "sops-age"}}
	}
	reqStart, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	apiPid, err := local.APIServerPid(bed.Env.Config.Host)
	if err != nil {
		return nil, err
	}
	apiStart, _ := local.PidCPU(apiPid)
	apiReqStart, err := scrapeAPIServer(bed.Env.Config)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	if err := c.Create(ctx, &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: ns},
		Spec:       sourcev1.GitRepositorySpec{URL: git.URL("apps"), Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		return nil, err
	}
	for i := range n {
		k := benchKustomization(ns, fmt.Sprintf("app-%04d", i))
		k.Spec.Decryption = decryption
		if err := c.Create(ctx, k); err != nil {
			return nil, err
		}
	}
	ready := func(k *applyv1.Kustomization) bool {
		for _, cond := range k.Status.Conditions {
			if cond.Type == meta.ReadyCondition {
				return cond.Status == metav1.ConditionTrue && k.Status.ObservedGeneration == k.Generation
			}
		}
		return false
	}
	if err := waitAll(ctx, c, ns, n, 10*time.Minute, func(l *applyv1.KustomizationList) []applyv1.Kustomization { return l.Items }, ready); err != nil {
		return nil, err
	}
	coldReady := time.Since(begin)
	if enc != nil {
		// Ready proves little if the ciphertext was applied: the ConfigMap holds the plain value.
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, clientKey(ns, "app-0000"), cm); err != nil {
			return nil, err
		}
		if cm.Data["app"] != "app-0000" {
			return nil, fmt.Errorf("ConfigMap %s/app-0000 was applied without being decrypted", ns)
		}
	}
	var durations []time.Duration
	var list applyv1.KustomizationList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	for _, k := range list.Items {
		if len(k.Status.History) > 0 {
			durations = append(durations, k.Status.History[0].Duration.Duration)
		}
	}
	slices.Sort(durations)
	cpuCold, _ := ac.CPU()
	apiCold, _ := local.PidCPU(apiPid)
	rssCold, _ := ac.PeakRSS()
	reqCold, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	apiReqCold, err := scrapeAPIServer(bed.Env.Config)
	if err != nil {
		return nil, err
	}

	versions, err := objectVersions(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	round, err := noopRound(ctx, c, ac, pprofAddr, profile, 5*time.Second, ns, n, 10*time.Minute, func(i int) client.Object {
		return &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i), Namespace: ns}}
	}, func(l *applyv1.KustomizationList) []applyv1.Kustomization { return l.Items }, func(o *applyv1.Kustomization) string { return o.Status.LastHandledReconcileAt })
	if err != nil {
		return nil, err
	}
	roundEnd := time.Now() // every Kustomization was last reconciled in the round
	reqNoop, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	apiNoop, _ := local.PidCPU(apiPid)
	apiReqNoop, err := scrapeAPIServer(bed.Env.Config)
	if err != nil {
		return nil, err
	}
	interval, err := intervalRound(ctx, ac, apiPid, metricsAddr, n, roundEnd)
	if err != nil {
		return nil, err
	}
	rss, _ := ac.PeakRSS()
	after, err := objectVersions(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	written := 0
	for id, v := range after {
		if versions[id] != v {
			written++
		}
	}

	var f figures
	f.add("cold_ready", "cold start to all Ready (health checked)", coldReady.Seconds(), 2, "s", Lower)
	f.add("cold_cpu", "apply-controller CPU, cold start", cpuCold.Seconds(), 2, "CPU s", Lower)
	if len(durations) > 0 {
		f.add("reconcile_median", "reconcile to Ready (apply + health), median", durations[len(durations)/2].Seconds(), 3, "s", Lower)
		f.add("reconcile_max", "reconcile to Ready (apply + health), max", durations[len(durations)-1].Seconds(), 3, "s", Lower)
	}
	f.coldRequests(reqCold.minus(reqStart), n)
	f.add("cold_apiserver_cpu", "kube-apiserver CPU per Kustomization, cold start", float64((apiCold-apiStart).Microseconds())/1000/float64(n), 2, "CPU ms", Lower)
	f.apiServerRequests("cold", "cold start", apiReqCold.minus(apiReqStart), n)
	f.add("cold_peak_rss", "apply-controller peak RSS, cold start", rssCold, 1, "MiB", Lower)
	f.add("noop_round", "no-op round, request to all handled", round.wall.Seconds(), 2, "s", Lower)
	f.add("noop_cpu_per_reconcile", "apply-controller CPU per no-op reconcile", round.perReconcile(), 3, "CPU ms/reconcile", Lower)
	f.noopRequests(reqNoop.minus(reqCold), n)
	f.add("noop_apiserver_cpu", "kube-apiserver CPU per Kustomization, no-op round", float64((apiNoop-apiCold).Microseconds())/1000/float64(n), 2, "CPU ms", Lower)
	f.apiServerRequests("noop", "no-op round", apiReqNoop.minus(apiReqCold), n)
	f.add("interval_requests_per_reconcile", "requests per no-op reconcile at the interval (no request annotation)", interval.requests.all/interval.reconciles, 2, "requests", Lower)
	f.add("interval_writes_per_reconcile", "writes per no-op reconcile at the interval", interval.requests.writes/interval.reconciles, 2, "requests", Lower)
	f.add("interval_cpu_per_reconcile", "apply-controller CPU per no-op reconcile at the interval", float64(interval.cpu.Microseconds())/1000/interval.reconciles, 3, "CPU ms/reconcile", Lower)
	f.add("interval_apiserver_cpu", fmt.Sprintf("kube-apiserver CPU per Kustomization over one interval (%s) with no request, idle load included", benchInterval), float64(interval.apiCPU.Microseconds())/1000/float64(n), 2, "CPU ms", Lower)
	f.add("noop_objects_written", fmt.Sprintf("applied objects written during the no-op round (of %d)", len(after)), float64(written), 0, "count", Lower)
	f.add("peak_rss", "apply-controller peak RSS", rss, 1, "MiB", Lower)
	what := ""
	if encrypt {
		what = ", each ConfigMap SOPS-encrypted (age)"
	}
	writeTable(os.Stdout, fmt.Sprintf("apply: %d Kustomizations from one GitRepository%s (%d CPUs, %s, --concurrent=%d)", n, what, runtime.NumCPU(), runtime.GOARCH, concurrent), f)
	return f, nil
}

// benchInterval is the Kustomizations' interval: long enough that no interval falls in the cold
// start or the no-op round at the sizes the scenario runs, short enough to measure one round of
// reconciles at the interval after them.
const benchInterval = 2 * time.Minute

// interval is what one round of no-op reconciles at the interval cost.
type interval struct {
	requests   requests
	reconciles float64
	cpu        time.Duration // apply-controller
	apiCPU     time.Duration // kube-apiserver, idle load included
}

// intervalRound waits until the controller has reconciled n more times with nothing asked of it
// (each Kustomization once, at its interval, the last of them due by roundDue(since)) and
// returns what that cost. It reads the controller's metrics once at the start and then not
// before the round is due: a scrape of them costs the controller CPU of its own (about 40 ms at
// 1,000 Kustomizations, their condition gauges), which polling would add to the round's.
func intervalRound(ctx context.Context, ac *local.Process, apiPid int, metricsAddr string, n int, since time.Time) (interval, error) {
	startReq, err := scrapeRequests(metricsAddr)
	if err != nil {
		return interval{}, err
	}
	startRec, err := sumCounter(metricsAddr, "controller_runtime_reconcile_total")
	if err != nil {
		return interval{}, err
	}
	cpu0, _ := ac.CPU()
	api0, _ := local.PidCPU(apiPid)
	deadline := time.Now().Add(2*benchInterval + time.Minute)
	for wait := time.Until(roundDue(since)); ; wait = 5 * time.Second {
		select {
		case <-ctx.Done():
			return interval{}, ctx.Err()
		case <-time.After(wait):
		}
		// CPU read before the scrapes, which would count in it otherwise.
		cpu1, _ := ac.CPU()
		api1, _ := local.PidCPU(apiPid)
		rec, err := sumCounter(metricsAddr, "controller_runtime_reconcile_total")
		if err != nil {
			return interval{}, err
		}
		if rec-startRec >= float64(n) {
			req, err := scrapeRequests(metricsAddr)
			if err != nil {
				return interval{}, err
			}
			return interval{requests: req.minus(startReq), reconciles: rec - startRec, cpu: cpu1 - cpu0, apiCPU: api1 - api0}, nil
		}
		if time.Now().After(deadline) {
			return interval{}, fmt.Errorf("%.0f of %d reconciles at the interval after %s", rec-startRec, n, 2*benchInterval+time.Minute)
		}
	}
}

// roundDue is when every Kustomization last reconciled before since has been reconciled again at
// its interval: the interval, plus the most shared/reconcile.Jitter adds (a twentieth), plus a
// margin for the work queue.
func roundDue(since time.Time) time.Time {
	return since.Add(benchInterval + benchInterval/20 + 5*time.Second)
}

func benchApp(name string) map[string]string {
	return map[string]string{
		"deployment.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 0
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      serviceAccountName: %[1]s
      containers:
        - name: app
          image: registry.example.invalid/podinfo:6.9.0
          ports: [{containerPort: 9898}]
`, name),
		"service.yaml": fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector: {app: %[1]s}
  ports: [{port: 80, targetPort: 9898}]
`, name),
		"serviceaccount.yaml": fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s\n", name),
		"configmap.yaml":      fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  app: %q\n", name, name),
	}
}

// objectVersions maps every applied object of the namespace to its resourceVersion.
func objectVersions(ctx context.Context, c client.Client, ns string) (map[string]string, error) {
	out := map[string]string{}
	for _, kind := range []string{"DeploymentList", "ServiceList", "ServiceAccountList", "ConfigMapList"} {
		list := &unstructured.UnstructuredList{}
		gv := "v1"
		if kind == "DeploymentList" {
			gv = "apps/v1"
		}
		list.SetAPIVersion(gv)
		list.SetKind(kind)
		if err := c.List(ctx, list, client.InNamespace(ns), client.HasLabels{"apply.plumb.dev/name"}); err != nil {
			return nil, err
		}
		for _, o := range list.Items {
			out[kind+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	return out, nil
}

// benchKustomization is one Kustomization of the apply and shard scenarios: its own folder of
// the "apps" repository, pruned, waited for, into ns.
func benchKustomization(ns, name string) *applyv1.Kustomization {
	return &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: applyv1.KustomizationSpec{
			SourceRef:       applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "apps"},
			Path:            "apps/" + name,
			Interval:        metav1.Duration{Duration: benchInterval},
			RetryInterval:   &metav1.Duration{Duration: 2 * time.Second},
			Timeout:         &metav1.Duration{Duration: 2 * time.Minute},
			Prune:           true,
			Wait:            true,
			TargetNamespace: ns,
		},
	}
}
