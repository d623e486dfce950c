// Command bench runs Plumb's benchmark scenarios against the local control plane, with every
// controller as a real process, and prints the figures as a Markdown table.
//
//	go run ./bench git [-n 200] [-cpuprofile file]
//	go run ./bench apply [-n 1000] [-concurrent 4] [-cpuprofile file]
//	go run ./bench oci [-n 500] [-cpuprofile file]
//	go run ./bench helmchart [-n 500] [-charts 50] [-versions 100] [-cpuprofile file]
//	go run ./bench helm [-n 1000] [-concurrent 10] [-cpuprofile file]
//	go run ./bench notify [-events 10000] [-objects 1000] [-delay 0s]
//	go run ./bench receiver [-n 20]
//	go run ./bench image [-tags 10000] [-files 500] [-markers 100]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/reconcile"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench git [-n N] | bench apply [-n N] [-concurrent N] | bench oci [-n N] | bench helmchart [-n N] | bench helm [-n N] [-concurrent N] | bench notify [-events N] [-objects N] [-delay D] | bench receiver [-n N] | bench image [-tags N] [-files N] [-markers N]")
		os.Exit(2)
	}
	var err error
	// On Ctrl-C or a timeout's SIGTERM the deferred stops still run: no control plane is left.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.SetOutput(io.Discard) // the test Git server logs every request
	switch os.Args[1] {
	case "git":
		fs := flag.NewFlagSet("git", flag.ExitOnError)
		n := fs.Int("n", 200, "GitRepositories on one repository")
		profile := fs.String("cpuprofile", "", "write a CPU profile of the controller during the no-op round to this file")
		_ = fs.Parse(os.Args[2:])
		err = benchGit(ctx, *n, *profile)
	case "apply":
		fs := flag.NewFlagSet("apply", flag.ExitOnError)
		n := fs.Int("n", 1000, "Kustomizations from one GitRepository")
		concurrent := fs.Int("concurrent", 4, "apply-controller --concurrent")
		profile := fs.String("cpuprofile", "", "write a CPU profile of apply-controller during the no-op round to this file")
		_ = fs.Parse(os.Args[2:])
		err = benchApply(ctx, *n, *concurrent, *profile)
	case "oci":
		fs := flag.NewFlagSet("oci", flag.ExitOnError)
		n := fs.Int("n", 500, "OCIRepositories, each on its own repository")
		profile := fs.String("cpuprofile", "", "write a CPU profile of the controller during the no-op round to this file")
		_ = fs.Parse(os.Args[2:])
		err = benchOCI(ctx, *n, *profile)
	case "helmchart":
		fs := flag.NewFlagSet("helmchart", flag.ExitOnError)
		n := fs.Int("n", 500, "HelmCharts from one HelmRepository")
		charts := fs.Int("charts", 50, "charts in the repository's index")
		versions := fs.Int("versions", 100, "versions of each chart in the index")
		profile := fs.String("cpuprofile", "", "write a CPU profile of the controller during the no-op round to this file")
		_ = fs.Parse(os.Args[2:])
		err = benchHelmChart(ctx, *n, *charts, *versions, *profile)
	case "helm":
		fs := flag.NewFlagSet("helm", flag.ExitOnError)
		n := fs.Int("n", 1000, "HelmReleases of one chart")
		concurrent := fs.Int("concurrent", 10, "helm-controller --concurrent")
		profile := fs.String("cpuprofile", "", "write a CPU profile of helm-controller during the no-op round to this file")
		_ = fs.Parse(os.Args[2:])
		err = benchHelm(ctx, *n, *concurrent, *profile)
	case "notify":
		fs := flag.NewFlagSet("notify", flag.ExitOnError)
		events := fs.Int("events", 10000, "events created")
		objects := fs.Int("objects", 1000, "objects the events are about")
		delay := fs.Duration("delay", 0, "the sink answers after this long (a slow chat service)")
		_ = fs.Parse(os.Args[2:])
		err = benchNotify(ctx, *events, *objects, *delay)
	case "receiver":
		fs := flag.NewFlagSet("receiver", flag.ExitOnError)
		n := fs.Int("n", 20, "pushes, each announced by a webhook call")
		_ = fs.Parse(os.Args[2:])
		err = benchReceiver(ctx, *n)
	case "image":
		fs := flag.NewFlagSet("image", flag.ExitOnError)
		tags := fs.Int("tags", 10000, "tags of the one image repository")
		files := fs.Int("files", 500, "YAML files of the Git repository")
		markers := fs.Int("markers", 100, "files with an image policy marker")
		_ = fs.Parse(os.Args[2:])
		err = benchImage(ctx, *tags, *files, *markers)
	default:
		err = fmt.Errorf("unknown scenario %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// waitAll polls the list of a namespace until n of its items are done, or the limit passes.
func waitAll[L any, PL interface {
	*L
	client.ObjectList
}, T any](ctx context.Context, c client.Client, ns string, n int, limit time.Duration, items func(PL) []T, done func(*T) bool) error {
	deadline := time.Now().Add(limit)
	for {
		list := PL(new(L))
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		count := 0
		all := items(list)
		for i := range all {
			if done(&all[i]) {
				count++
			}
		}
		if count == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d done after %s", count, n, limit)
		}
		// The polling interval of a benchmark driver: fine for small runs, and not a load that
		// competes with the controllers (each poll lists every object) for large ones.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(100*time.Millisecond, time.Duration(n)*500*time.Microsecond)):
		}
	}
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
}, T any](ctx context.Context, c client.Client, proc *local.Process, pprofAddr, profile string, profileFor time.Duration,
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
