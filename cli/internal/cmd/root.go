// Package cmd holds the plumb commands. They follow kubectl's conventions (-n, -A, --kubeconfig,
// --context, -o yaml|json), print one clear line on error, and exit 0 on success, 1 when the
// cluster says no (not Ready, not found, a failed install) and 2 on a mistake in the command.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// exitError ends a command with an exit code of its own; with no err, nothing is printed.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e exitError) Unwrap() error { return e.err }

// usageError is a mistake in the command line.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Options are the flags every command shares, and where it writes.
type Options struct {
	Config *genericclioptions.ConfigFlags
	Out    io.Writer
	ErrOut io.Writer
	// Timeout bounds waits.
	Timeout time.Duration
}

// Client returns a client of the cluster the flags name.
func (o *Options) Client() (client.Client, *rest.Config, error) {
	cfg, err := o.Config.ToRESTConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("no cluster: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Timeout = o.Timeout // no request hangs on an unreachable API server
	c, err := clientFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, cfg, nil
}

// clientFor returns a client of cfg's cluster that knows the built-in kinds and CRDs; Plumb's
// kinds are read as unstructured.
func clientFor(cfg *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), apiextensionsv1.AddToScheme(scheme)); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("no cluster at %s: %w", cfg.Host, err)
	}
	return c, nil
}

// Namespace is -n, or the kubeconfig context's namespace, or default.
func (o *Options) Namespace() string {
	if o.Config.Namespace != nil && *o.Config.Namespace != "" {
		return *o.Config.Namespace // -n needs no kubeconfig (create secret --export)
	}
	ns, _, err := o.Config.ToRawKubeConfigLoader().Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// NewRoot returns the plumb command.
func NewRoot(out, errOut io.Writer) *cobra.Command {
	o := &Options{Config: genericclioptions.NewConfigFlags(true), Out: out, ErrOut: errOut}
	root := &cobra.Command{
		Use:   "plumb",
		Short: "Plumb keeps a cluster true to Git",
		Long: `plumb installs Plumb's controllers, bootstraps a cluster from Git, and answers the
everyday questions: what is synced, why not, sync it now.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	flags := root.PersistentFlags()
	o.Config.AddFlags(flags)
	flags.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long to wait for the cluster")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newInstall(o), newBootstrap(o), newUninstall(o), newGet(o), newDiff(o), newTree(o), newReconcile(o), newSuspend(o, true), newSuspend(o, false), newEvents(o), newDashboard(o), newCheck(o), newCreate(o), newMigrate(o), newPush(o))
	return root
}

// Execute runs the command line and returns the exit code.
func Execute(ctx context.Context, args []string, out, errOut io.Writer) int {
	return execute(ctx, args, nil, out, errOut)
}

// execute is Execute reading stdin from in (nil: os.Stdin).
func execute(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	root := NewRoot(out, errOut)
	root.SetArgs(args)
	if in != nil {
		root.SetIn(in)
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee exitError
	if errors.As(err, &ee) && ee.err == nil {
		return ee.code
	}
	fmt.Fprintln(errOut, "plumb: "+oneLine(describe(err)))
	if errors.As(err, &ee) {
		return ee.code
	}
	var u usageError
	if errors.As(err, &u) || cobraUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}

// cobraUsage recognises cobra's own command-line errors: unknown commands and flags, argument
// counts, required flags.
func cobraUsage(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "arg(s)", "required flag(s)", "invalid argument"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// describe turns API errors into what a person would ask next.
func describe(err error) error {
	var ne *net.OpError
	switch {
	case errors.As(err, &ne):
		return fmt.Errorf("cannot reach the cluster: %v (check --kubeconfig and --context)", ne)
	case apimeta.IsNoMatchError(err):
		return fmt.Errorf("%v (is the controller installed? see plumb check)", err)
	case apierrors.IsNotFound(err):
		return err
	}
	return err
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// Main is the program: plumb's exit code for os.Args. Ctrl-C ends a wait.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
