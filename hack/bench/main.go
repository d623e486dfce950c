// Command bench runs Plumb's benchmark scenarios against the local control plane, with every
// controller as a real process, and prints the figures as a Markdown table.
//
//	go run ./bench git [-n 200] [-cpuprofile file]
//	go run ./bench apply [-n 1000] [-concurrent 4] [-cpuprofile file]
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
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench git [-n N] | bench apply [-n N] [-concurrent N]")
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
	default:
		err = fmt.Errorf("unknown scenario %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
