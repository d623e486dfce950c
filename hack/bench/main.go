// Command bench runs Plumb's benchmark scenarios against the local control plane, with every
// controller as a real process, prints the figures as a Markdown table, appends them as one JSON
// line to docs/benchmarks/<scenario>.jsonl and compares them with the last run of the same sizes
// in that file.
//
//	go run ./bench list
//	go run ./bench git [-n 200] [-cpuprofile file]
//	go run ./bench apply [-n 1000] [-concurrent 4] [-sops] [-cpuprofile file]
//	go run ./bench oci [-n 500] [-verify] [-cpuprofile file]
//	go run ./bench helmchart [-n 500] [-charts 50] [-versions 100] [-cpuprofile file]
//	go run ./bench shard [-n 1000] [-concurrent 4]
//	go run ./bench helm [-n 1000] [-concurrent 10] [-cpuprofile file]
//	go run ./bench notify [-events 10000] [-objects 1000] [-providers 1] [-delay 0s]
//	go run ./bench receiver [-n 20]
//	go run ./bench image [-tags 10000] [-files 500] [-markers 100]
//
// Every scenario also takes -out (the folder of the JSON lines; empty: record nothing) and
// -threshold (the change in percent, the bad way, flagged as a regression).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// scenarios in the order `make bench` runs them: the quick ones first.
var scenarios = []string{"git", "receiver", "notify", "image", "oci", "helmchart", "helm", "apply", "shard"}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: bench list | bench <scenario> [flags] (scenarios: %s; bench <scenario> -h for its flags)\n", strings.Join(scenarios, ", "))
		os.Exit(2)
	}
	if os.Args[1] == "list" {
		fmt.Println(strings.Join(scenarios, "\n"))
		return
	}
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	// On Ctrl-C or a timeout's SIGTERM the deferred stops still run: no control plane is left.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.SetOutput(io.Discard) // the test Git server logs every request

	scenario := os.Args[1]
	fs := flag.NewFlagSet(scenario, flag.ExitOnError)
	out := fs.String("out", filepath.Join(root, "docs", "benchmarks"), "folder of the <scenario>.jsonl files; empty: record nothing")
	threshold := fs.Float64("threshold", 10, "a change of more than this many percent the bad way is flagged as a regression")
	parse := func() { _ = fs.Parse(os.Args[2:]) }
	var (
		params map[string]any
		ms     []Metric
		rec    Record
	)
	// begin is called once the flags are parsed: the record is of the commit and load as the
	// run starts.
	begin := func(p map[string]any) { params = p; rec = newRecord(root, scenario, params) }
	switch scenario {
	case "git":
		n := fs.Int("n", 200, "GitRepositories on one repository")
		profile := fs.String("cpuprofile", "", "write a CPU profile of the controller during the no-op round to this file")
		parse()
		begin(map[string]any{"n": *n})
		ms, err = benchGit(ctx, *n, *profile)
	case "apply":
		n := fs.Int("n", 1000, "Kustomizations from one GitRepository")
		concurrent := fs.Int("concurrent", 4, "apply-controller --concurrent")
		encrypt := fs.Bool("sops", false, "SOPS-encrypt each app's ConfigMap with age; the Kustomizations decrypt it")
		profile := fs.String("cpuprofile", "", "write a CPU profile of apply-controller during the no-op round to this file")
		parse()
		p := map[string]any{"n": *n, "concurrent": *concurrent}
		if *encrypt {
			// Only then: plain runs keep comparing with the plain runs recorded before.
			p["sops"] = true
		}
		begin(p)
		ms, err = benchApply(ctx, *n, *concurrent, *encrypt, *profile)
	case "shard":
		n := fs.Int("n", 1000, "Kustomizations from one GitRepository, split between two apply-controller shards")
		concurrent := fs.Int("concurrent", 4, "apply-controller --concurrent of each shard")
		parse()
		begin(map[string]any{"n": *n, "concurrent": *concurrent})
		ms, err = benchShard(ctx, *n, *concurrent, filepath.Join(root, "docs", "benchmarks", "apply.jsonl"))
	case "oci":
		n := fs.Int("n", 500, "OCIRepositories, each on its own repository")
		verify := fs.Bool("verify", false, "sign every artifact with one cosign key; every OCIRepository verifies it")
		profile := fs.String("cpuprofile", "", "write a CPU profile of the controller during the no-op round to this file")
		parse()
		p := map[string]any{"n": *n}
		if *verify {
			// Only then: plain runs keep comparing with the plain runs recorded before.
			p["verify"] = true
		}
		begin(p)
		ms, err = benchOCI(ctx, *n, *verify, *profile)
	case "helmchart":
		n := fs.Int("n", 500, "HelmCharts from one HelmRepository")
		charts := fs.Int("charts", 50, "charts in the repository's index")
		versions := fs.Int("versions", 100, "versions of each chart in the index")
		profile := fs.String("cpuprofile", "", "write a CPU profile of the controller during the no-op round to this file")
		parse()
		begin(map[string]any{"n": *n, "charts": *charts, "versions": *versions})
		ms, err = benchHelmChart(ctx, *n, *charts, *versions, *profile)
	case "helm":
		n := fs.Int("n", 1000, "HelmReleases of one chart")
		concurrent := fs.Int("concurrent", 10, "helm-controller --concurrent")
		profile := fs.String("cpuprofile", "", "write a CPU profile of helm-controller during the no-op round to this file")
		parse()
		begin(map[string]any{"n": *n, "concurrent": *concurrent})
		ms, err = benchHelm(ctx, *n, *concurrent, *profile)
	case "notify":
		events := fs.Int("events", 10000, "events created")
		objects := fs.Int("objects", 1000, "objects the events are about")
		delay := fs.Duration("delay", 0, "the sink answers after this long (a slow chat service)")
		providers := fs.Int("providers", 1, "Providers the events fan out to, each with its own Alert and sink")
		parse()
		p := map[string]any{"events": *events, "objects": *objects, "delay": delay.String()}
		if *providers != 1 {
			p["providers"] = *providers // runs of one Provider keep the parameters they always had
		}
		begin(p)
		ms, err = benchNotify(ctx, *events, *objects, *providers, *delay)
	case "receiver":
		n := fs.Int("n", 20, "pushes, each announced by a webhook call")
		parse()
		begin(map[string]any{"n": *n})
		ms, err = benchReceiver(ctx, *n)
	case "image":
		tags := fs.Int("tags", 10000, "tags of the one image repository")
		files := fs.Int("files", 500, "YAML files of the Git repository")
		markers := fs.Int("markers", 100, "files with an image policy marker")
		parse()
		begin(map[string]any{"tags": *tags, "files": *files, "markers": *markers})
		ms, err = benchImage(ctx, *tags, *files, *markers)
	default:
		err = fmt.Errorf("unknown scenario %q (scenarios: %s)", scenario, strings.Join(scenarios, ", "))
	}
	if err == nil && *out != "" {
		rec.Metrics = ms
		err = record(filepath.Join(*out, scenario+".jsonl"), rec, *threshold)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// record compares rec with the last run of the same sizes in the file at path, then appends it.
func record(path string, rec Record, threshold float64) error {
	earlier, err := readRecordFile(path)
	if err != nil {
		return err
	}
	if old, ok := previous(earlier, rec); ok {
		writeComparison(os.Stdout, old, compare(old, rec, threshold), threshold)
	} else {
		fmt.Printf("\nNo earlier run of %s with these sizes (%s) in %s.\n", rec.Scenario, paramsKey(rec.Params), path)
	}
	if err := appendRecord(path, rec); err != nil {
		return err
	}
	fmt.Printf("Recorded in %s.\n", path)
	return nil
}

// waitAll waits until done holds for n objects of the list kind in ns, or limit passes. It
// lists once and then follows a watch from that list (listing again when the watch ends), so
// that waiting costs the API server little: a list of every object twice a second cost it 6 %
// of its CPU at 1,000 Kustomizations, in the very runs it measured.
func waitAll[L any, PL interface {
	*L
	client.ObjectList
}, T any](ctx context.Context, c client.WithWatch, ns string, n int, limit time.Duration, items func(PL) []T, done func(*T) bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	count := 0
	for {
		list := PL(new(L))
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return waitErr(ctx, err, count, n, limit)
		}
		state := map[string]bool{}
		count = 0
		all := items(list)
		for i := range all {
			name := any(&all[i]).(client.Object).GetName()
			state[name] = done(&all[i])
			if state[name] {
				count++
			}
		}
		if count == n {
			return nil
		}
		w, err := c.Watch(ctx, PL(new(L)), client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()}})
		if err != nil {
			return waitErr(ctx, err, count, n, limit)
		}
		for ev := range w.ResultChan() {
			o, ok := any(ev.Object).(*T)
			if !ok {
				break // an error event (the list's version too old, say): list again
			}
			name := any(o).(client.Object).GetName()
			now := ev.Type != watch.Deleted && done(o)
			if now != state[name] {
				if now {
					count++
				} else {
					count--
				}
			}
			state[name] = now
			if ev.Type == watch.Deleted {
				delete(state, name)
			}
			if count == n {
				w.Stop()
				return nil
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return waitErr(ctx, ctx.Err(), count, n, limit)
		}
	}
}

// waitErr is waitAll's error: the count done when the limit passed, or err.
func waitErr(ctx context.Context, err error, count, n int, limit time.Duration) error {
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%d of %d done after %s", count, n, limit)
	}
	return err
}

// noop is the outcome of a no-op round.
type noop struct {
	wall time.Duration // from the first request to all handled
	cpu  time.Duration // controller CPU during the round
	n    int
}

// perReconcile is the controller CPU per reconcile of the round, in milliseconds.
func (r noop) perReconcile() float64 { return float64(r.cpu.Microseconds()) / 1000 / float64(r.n) }

// noopRound asks n objects to reconcile with nothing changed upstream and waits until each has
// handled the request (status.lastHandledReconcileAt); with profile, a CPU profile of the first
// profileFor of the round is written there (pprofAddr: the controller's).
func noopRound[L any, PL interface {
	*L
	client.ObjectList
}, T any](ctx context.Context, c client.WithWatch, proc *local.Process, pprofAddr, profile string, profileFor time.Duration,
	ns string, n int, limit time.Duration, object func(i int) client.Object, items func(PL) []T, handled func(*T) string) (noop, error) {
	before, _ := proc.CPU()
	var profiled chan error
	if profile != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- local.CPUProfile(pprofAddr, profileFor, profile) }()
	}
	value := time.Now().Format(time.RFC3339Nano)
	begin := time.Now()
	if err := requestAll(ctx, c, n, value, object); err != nil {
		return noop{}, err
	}
	if err := waitAll(ctx, c, ns, n, limit, items, func(o *T) bool { return handled(o) == value }); err != nil {
		return noop{}, err
	}
	r := noop{wall: time.Since(begin), n: n}
	after, _ := proc.CPU()
	r.cpu = after - before
	if profiled != nil {
		if err := <-profiled; err != nil {
			return r, err
		}
	}
	return r, nil
}

// requestAll sets the reconcile request annotation to value on n objects, as a no-op round
// starts.
func requestAll(ctx context.Context, c client.Client, n int, value string, object func(i int) client.Object) error {
	patch := reconcile.RequestPatch(value)
	for i := range n {
		if err := c.Patch(ctx, object(i), patch); err != nil {
			return err
		}
	}
	return nil
}

func clientKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }
