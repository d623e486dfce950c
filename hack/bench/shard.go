package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// shardLabel is the label the shards select on: Flux's, so that Flux manifests shard unchanged.
const shardLabel = "sharding.fluxcd.io/key"

// shardNames are the shards of the scenario; Kustomization i goes to shardNames[i%2].
var shardNames = []string{"shard1", "shard2"}

// shardProc is one apply-controller process of the scenario and what it was measured to cost.
type shardProc struct {
	name        string
	proc        *local.Process
	metricsAddr string
	n           int // Kustomizations labelled for it

	reqStart, reqCold, reqNoop  requests
	recNoop0, recNoop1          float64 // controller_runtime_reconcile_total around the no-op round
	cpuCold, cpuNoop0, cpuNoop1 time.Duration
	rssCold                     float64
	cold, noop                  time.Duration // to all of its Kustomizations done
}

// benchShard is the apply scenario split between two apply-controller processes by
// --watch-label-selector: n Kustomizations, alternately labelled for shard1 and shard2, and one
// labelled for neither, which neither may reconcile. Each process's figures are kept apart; the
// last apply run of the same n and concurrency in applyRecords (the one-process figures) is
// printed beside them.
func benchShard(ctx context.Context, n, concurrent int, applyRecords string) ([]Metric, error) {
	bed, err := local.StartBed("plumb-bench-shard-", true)
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
	for i := range n {
		for name, content := range benchApp(fmt.Sprintf("app-%04d", i)) {
			files[fmt.Sprintf("apps/app-%04d/%s", i, name)] = content
		}
	}
	if _, _, err := git.NewRepo("apps", files); err != nil {
		return nil, err
	}
	if _, err := bed.StartSourceController(); err != nil {
		return nil, err
	}
	shards := make([]*shardProc, len(shardNames))
	for i, name := range shardNames {
		s := &shardProc{name: name, n: n / len(shardNames)}
		if i < n%len(shardNames) {
			s.n++
		}
		if s.metricsAddr, err = local.FreeAddr(); err != nil {
			return nil, err
		}
		if s.proc, err = bed.StartControllerAs("apply-controller-"+name, "apply-controller", "--metrics-addr", s.metricsAddr,
			fmt.Sprintf("--concurrent=%d", concurrent), fmt.Sprintf("--watch-label-selector=%s in (%s)", shardLabel, name)); err != nil {
			return nil, err
		}
		shards[i] = s
	}

	ns := "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	for _, s := range shards {
		if s.reqStart, err = scrapeRequests(s.metricsAddr); err != nil {
			return nil, err
		}
	}
	apiPid, err := local.APIServerPid(bed.Env.Config.Host)
	if err != nil {
		return nil, err
	}
	apiStart, _ := local.PidCPU(apiPid)
	begin := time.Now()
	if err := c.Create(ctx, &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: ns},
		Spec:       sourcev1.GitRepositorySpec{URL: git.URL("apps"), Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		return nil, err
	}
	for i := range n {
		k := benchKustomization(ns, fmt.Sprintf("app-%04d", i))
		k.Labels = map[string]string{shardLabel: shardNames[i%len(shardNames)]}
		if err := c.Create(ctx, k); err != nil {
			return nil, err
		}
	}
	// Labelled for no shard: were it reconciled, it would fail (its target namespace does not
	// exist) and show a condition and a finalizer.
	unsharded := benchKustomization(ns, "unsharded")
	unsharded.Spec.Path, unsharded.Spec.TargetNamespace = "apps/app-0000", "nowhere"
	if err := c.Create(ctx, unsharded); err != nil {
		return nil, err
	}
	ready := func(k *applyv1.Kustomization) bool {
		for _, cond := range k.Status.Conditions {
			if cond.Type == meta.ReadyCondition {
				return cond.Status == metav1.ConditionTrue && k.Status.ObservedGeneration == k.Generation
			}
		}
		return false
	}
	coldTimes, err := waitShards(ctx, c, ns, shards, begin, 10*time.Minute, ready)
	if err != nil {
		return nil, err
	}
	coldReady := time.Since(begin)
	apiCold, _ := local.PidCPU(apiPid)
	for i, s := range shards {
		s.cold = coldTimes[i]
		s.cpuCold, _ = s.proc.CPU()
		s.rssCold, _ = s.proc.PeakRSS()
		if s.reqCold, err = scrapeRequests(s.metricsAddr); err != nil {
			return nil, err
		}
	}

	versions, err := objectVersions(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	for _, s := range shards {
		if s.recNoop0, err = sumCounter(s.metricsAddr, "controller_runtime_reconcile_total"); err != nil {
			return nil, err
		}
		s.cpuNoop0, _ = s.proc.CPU()
	}
	value := time.Now().Format(time.RFC3339Nano)
	begin = time.Now()
	if err := requestAll(ctx, c, n, value, func(i int) client.Object {
		return &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i), Namespace: ns}}
	}); err != nil {
		return nil, err
	}
	noopTimes, err := waitShards(ctx, c, ns, shards, begin, 10*time.Minute, func(k *applyv1.Kustomization) bool { return k.Status.LastHandledReconcileAt == value })
	if err != nil {
		return nil, err
	}
	noopRound := time.Since(begin)
	noopEnd := time.Now() // every Kustomization was last reconciled in the round
	apiNoop, _ := local.PidCPU(apiPid)
	for i, s := range shards {
		s.noop = noopTimes[i]
		s.cpuNoop1, _ = s.proc.CPU()
		if s.recNoop1, err = sumCounter(s.metricsAddr, "controller_runtime_reconcile_total"); err != nil {
			return nil, err
		}
		if s.reqNoop, err = scrapeRequests(s.metricsAddr); err != nil {
			return nil, err
		}
	}
	intervals, apiInterval, err := shardIntervalRound(ctx, shards, apiPid, noopEnd)
	if err != nil {
		return nil, err
	}
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
	if err := c.Get(ctx, client.ObjectKeyFromObject(unsharded), unsharded); err != nil {
		return nil, err
	}
	unshardedReconciled := 0
	if len(unsharded.Status.Conditions) > 0 || len(unsharded.Finalizers) > 0 {
		unshardedReconciled = 1
	}

	var f figures
	perK := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	f.add("cold_ready", "cold start to all Ready (health checked), both shards", coldReady.Seconds(), 2, "s", Lower)
	f.add("cold_apiserver_cpu", "kube-apiserver CPU per Kustomization, cold start", perK(apiCold-apiStart), 2, "CPU ms", Lower)
	f.add("noop_round", "no-op round, request to all handled, both shards", noopRound.Seconds(), 2, "s", Lower)
	f.add("noop_apiserver_cpu", "kube-apiserver CPU per Kustomization, no-op round", perK(apiNoop-apiCold), 2, "CPU ms", Lower)
	f.add("interval_apiserver_cpu", fmt.Sprintf("kube-apiserver CPU per Kustomization over one interval (%s) with no request, idle load included", benchInterval), perK(apiInterval), 2, "CPU ms", Lower)
	f.add("noop_objects_written", fmt.Sprintf("applied objects written during the no-op rounds (of %d)", len(after)), float64(written), 0, "count", Lower)
	extra := -float64(n)
	for _, s := range shards {
		extra += s.recNoop1 - s.recNoop0
	}
	f.add("noop_extra_reconciles", "reconciles in the no-op round beyond one per Kustomization, both shards (a Kustomization of both shards counts here)", extra, 0, "count", Lower)
	f.add("unsharded_reconciled", "Kustomizations labelled for no shard that a shard reconciled (of 1)", float64(unshardedReconciled), 0, "count", Lower)
	for i, s := range shards {
		p, in := s.name+"_", intervals[i]
		f.add(p+"kustomizations", s.name+": Kustomizations labelled for it", float64(s.n), 0, "count", Higher)
		f.add(p+"cold_ready", s.name+": cold start to all its Kustomizations Ready", s.cold.Seconds(), 2, "s", Lower)
		f.add(p+"cold_cpu", s.name+": apply-controller CPU, cold start", s.cpuCold.Seconds(), 2, "CPU s", Lower)
		cold := s.reqCold.minus(s.reqStart)
		f.add(p+"cold_requests_per_object", s.name+": API requests per Kustomization, cold start", cold.all/float64(s.n), 2, "requests/object", Lower)
		f.add(p+"cold_writes_per_object", s.name+": of which writes", cold.writes/float64(s.n), 2, "requests/object", Lower)
		f.add(p+"cold_peak_rss", s.name+": apply-controller peak RSS, cold start", s.rssCold, 1, "MiB", Lower)
		reconciles := s.recNoop1 - s.recNoop0
		noop := s.reqNoop.minus(s.reqCold)
		f.add(p+"noop_reconciles", s.name+": reconciles in the no-op round", reconciles, 0, "count", Lower)
		f.add(p+"noop_round", s.name+": no-op round, request to all its Kustomizations handled", s.noop.Seconds(), 2, "s", Lower)
		f.add(p+"noop_requests_per_reconcile", s.name+": API requests per requested no-op reconcile", noop.all/reconciles, 2, "requests/reconcile", Lower)
		f.add(p+"noop_writes_per_reconcile", s.name+": of which writes", noop.writes/reconciles, 2, "requests/reconcile", Lower)
		f.add(p+"noop_cpu_per_reconcile", s.name+": apply-controller CPU per requested no-op reconcile", float64((s.cpuNoop1-s.cpuNoop0).Microseconds())/1000/reconciles, 3, "CPU ms/reconcile", Lower)
		f.add(p+"interval_reconciles", s.name+": reconciles in one round at the interval", in.reconciles, 0, "count", Lower)
		f.add(p+"interval_requests_per_reconcile", s.name+": API requests per no-op reconcile at the interval", in.requests.all/in.reconciles, 2, "requests", Lower)
		f.add(p+"interval_writes_per_reconcile", s.name+": of which writes", in.requests.writes/in.reconciles, 2, "requests", Lower)
		f.add(p+"interval_cpu_per_reconcile", s.name+": apply-controller CPU per no-op reconcile at the interval", float64(in.cpu.Microseconds())/1000/in.reconciles, 3, "CPU ms/reconcile", Lower)
		rss, _ := s.proc.PeakRSS()
		f.add(p+"peak_rss", s.name+": apply-controller peak RSS", rss, 1, "MiB", Lower)
		heap, err := sumCounter(s.metricsAddr, "go_memstats_heap_inuse_bytes")
		if err != nil {
			return nil, err
		}
		f.add(p+"heap_inuse", s.name+": apply-controller heap in use at the end", heap/(1<<20), 1, "MiB", Lower)
	}
	writeTable(os.Stdout, fmt.Sprintf("shard: %d Kustomizations from one GitRepository, two apply-controller shards by --watch-label-selector (%d CPUs, %s, --concurrent=%d each)", n, runtime.NumCPU(), runtime.GOARCH, concurrent), f)
	if err := writeOneProcess(os.Stdout, applyRecords, n, concurrent, f); err != nil {
		return nil, err
	}
	if extra > float64(n)/10 {
		return nil, fmt.Errorf("%.0f reconciles in the no-op round beyond one per Kustomization: a shard reconciles Kustomizations of the other", extra)
	}
	if unshardedReconciled > 0 {
		return nil, fmt.Errorf("a Kustomization labelled for no shard was reconciled")
	}
	return f, nil
}

// waitShards polls the Kustomizations of ns until every one labelled for a shard is done, and
// returns for each shard the time from begin until all of its were.
func waitShards(ctx context.Context, c client.Client, ns string, shards []*shardProc, begin time.Time, limit time.Duration, done func(*applyv1.Kustomization) bool) ([]time.Duration, error) {
	out := make([]time.Duration, len(shards))
	deadline := time.Now().Add(limit)
	for {
		var list applyv1.KustomizationList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.HasLabels{shardLabel}); err != nil {
			return nil, err
		}
		counts := map[string]int{}
		for i := range list.Items {
			if done(&list.Items[i]) {
				counts[list.Items[i].Labels[shardLabel]]++
			}
		}
		all := true
		for i, s := range shards {
			if out[i] == 0 && counts[s.name] == s.n {
				out[i] = time.Since(begin)
			}
			all = all && out[i] > 0
		}
		if all {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not all done after %s: %v of %d and %d", limit, counts, shards[0].n, shards[1].n)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(max(100*time.Millisecond, time.Duration(len(list.Items))*500*time.Microsecond)):
		}
	}
}

// shardIntervalRound waits until each shard has reconciled as many times as it has
// Kustomizations with nothing asked of it (each once, at its interval, due by roundDue(since))
// and returns what that cost each shard, and kube-apiserver's CPU meanwhile. Like
// intervalRound, it reads the shards' metrics only at the start and once the round is due.
func shardIntervalRound(ctx context.Context, shards []*shardProc, apiPid int, since time.Time) ([]interval, time.Duration, error) {
	out := make([]interval, len(shards))
	startReq := make([]requests, len(shards))
	startRec := make([]float64, len(shards))
	startCPU := make([]time.Duration, len(shards))
	finished := make([]bool, len(shards))
	var err error
	for i, s := range shards {
		if startReq[i], err = scrapeRequests(s.metricsAddr); err != nil {
			return nil, 0, err
		}
		if startRec[i], err = sumCounter(s.metricsAddr, "controller_runtime_reconcile_total"); err != nil {
			return nil, 0, err
		}
		startCPU[i], _ = s.proc.CPU()
	}
	api0, _ := local.PidCPU(apiPid)
	limit := 2*benchInterval + time.Minute
	deadline := time.Now().Add(limit)
	for wait := time.Until(roundDue(since)); ; wait = 5 * time.Second {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(wait):
		}
		left := 0
		for i, s := range shards {
			if finished[i] {
				continue
			}
			cpu, _ := s.proc.CPU() // before the scrapes, which would count in it otherwise
			rec, err := sumCounter(s.metricsAddr, "controller_runtime_reconcile_total")
			if err != nil {
				return nil, 0, err
			}
			if rec-startRec[i] < float64(s.n) {
				left++
				continue
			}
			req, err := scrapeRequests(s.metricsAddr)
			if err != nil {
				return nil, 0, err
			}
			out[i] = interval{requests: req.minus(startReq[i]), reconciles: rec - startRec[i], cpu: cpu - startCPU[i]}
			finished[i] = true
		}
		if left == 0 {
			api1, _ := local.PidCPU(apiPid)
			return out, api1 - api0, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("%d shards had not reconciled each of their Kustomizations at the interval after %s", left, limit)
		}
	}
}

// writeOneProcess prints the shards' figures beside those of the last apply run of n
// Kustomizations with one process of the same concurrency, recorded in the file at path.
func writeOneProcess(w io.Writer, path string, n, concurrent int, shards []Metric) error {
	recs, err := readRecordFile(path)
	if err != nil {
		return err
	}
	one, ok := previous(recs, Record{Scenario: "apply", Params: map[string]any{"n": n, "concurrent": concurrent}})
	if !ok {
		fmt.Fprintf(w, "\nNo apply run of n=%d, --concurrent=%d in %s to compare with.\n", n, concurrent, path)
		return nil
	}
	byName := map[string]float64{}
	for _, m := range one.Metrics {
		byName[m.Name] = m.Value
	}
	for _, m := range shards {
		byName["shards:"+m.Name] = m.Value
	}
	fmt.Fprintf(w, "\nOne process (apply, %s at %s, load %.2f then) and two shards:\n\n| figure | one process | %s | %s |\n|---|---|---|---|\n",
		one.Date, one.Commit, one.Load1, shardNames[0], shardNames[1])
	rows := []struct{ label, name string }{
		{"cold start to all Ready (s)", "cold_ready"},
		{"apply-controller CPU, cold start (CPU s)", "cold_cpu"},
		{"API requests per Kustomization, cold start", "cold_requests_per_object"},
		{"no-op round, request to all handled (s)", "noop_round"},
		{"API requests per requested no-op reconcile", "noop_requests_per_reconcile"},
		{"API requests per no-op reconcile at the interval", "interval_requests_per_reconcile"},
		{"CPU per no-op reconcile at the interval (ms)", "interval_cpu_per_reconcile"},
		{"peak RSS (MiB)", "peak_rss"},
	}
	value := func(key string) string {
		v, ok := byName[key]
		if !ok {
			return "—"
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.label, value(r.name), value("shards:"+shardNames[0]+"_"+r.name), value("shards:"+shardNames[1]+"_"+r.name))
	}
	for _, name := range []string{"cold_apiserver_cpu", "noop_apiserver_cpu", "interval_apiserver_cpu"} {
		fmt.Fprintf(w, "| kube-apiserver %s per Kustomization (CPU ms) | %s | %s (both) | |\n", name, value(name), value("shards:"+name))
	}
	return nil
}
