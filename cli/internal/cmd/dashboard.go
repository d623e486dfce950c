package cmd

import (
	"fmt"
	"net"
	"os/exec"
	"runtime"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/plumb-dev/plumb/cli/internal/dashboard"
)

func newDashboard(o *Options) *cobra.Command {
	var addr, userHeader, groupHeader string
	var open, inCluster, allowActions bool
	c := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a web UI of every Plumb object, live: overview, flow graph, object pages, actions",
		Long: `dashboard serves a web UI on this machine that talks to the cluster with your kubeconfig, so
it shows exactly what your RBAC lets you see and offers reconcile, suspend and resume only where
you may patch the object. Pages update live through watches. Nothing is installed in the cluster.

With --in-cluster it runs as a Deployment (the Kustomize base cli/config/dashboard) behind an
authenticating proxy: it reads with its ServiceAccount, read-only, and with --allow-actions acts
as the person the proxy names in --user-header and --group-header, through impersonation
(docs/guides/dashboard.md).`,
		Example: `  plumb dashboard
  plumb dashboard --context prod --open
  plumb dashboard --addr 127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := dashboard.CheckAddr(addr, inCluster); err != nil {
				return usageError{err}
			}
			if allowActions && !inCluster {
				return usagef("--allow-actions is for --in-cluster: locally your own RBAC decides what you may do")
			}
			// A long-running command: controller-runtime would warn on stderr that nobody set its
			// logger; the dashboard reports what matters on its own.
			ctrllog.SetLogger(logr.Discard())
			cfg, err := dashboardConfig(o, inCluster)
			if err != nil {
				return err
			}
			c, err := clientFor(cfg)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("cannot listen on %s: %w", addr, err)
			}
			defer l.Close()
			srv, err := dashboard.New(cmd.Context(), dashboard.Config{
				REST: cfg, Client: c, Namespace: o.Namespace(), InCluster: inCluster, AllowActions: allowActions,
				UserHeader: userHeader, GroupHeader: groupHeader, Timeout: o.Timeout, Log: o.ErrOut,
			})
			if err != nil {
				return describe(err)
			}
			url := "http://" + l.Addr().String() + "/"
			fmt.Fprintf(o.Out, "► Plumb dashboard: %s (Ctrl-C stops it)\n", url)
			if open {
				openBrowser(url)
			}
			return srv.Serve(cmd.Context(), l)
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", dashboard.DefaultAddr, "address to listen on; only loopback unless --in-cluster")
	f.BoolVar(&open, "open", false, "open the dashboard in a browser (xdg-open, open)")
	f.BoolVar(&inCluster, "in-cluster", false, "run in a cluster with the pod's ServiceAccount, behind an authenticating proxy; read-only unless --allow-actions")
	f.BoolVar(&allowActions, "allow-actions", false, "with --in-cluster: offer actions, done as the proxy's user through impersonation")
	f.StringVar(&userHeader, "user-header", "X-Forwarded-User", "with --in-cluster: the proxy's header naming the signed-in user")
	f.StringVar(&groupHeader, "group-header", "X-Forwarded-Groups", "with --in-cluster: the proxy's header naming the user's groups")
	return c
}

// dashboardConfig is the REST config the dashboard watches with: no client timeout, since
// watches are long requests; each page bounds its own requests with --timeout.
func dashboardConfig(o *Options, inCluster bool) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if inCluster {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = o.Config.ToRESTConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("no cluster: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Timeout = 0
	return cfg, nil
}

// openBrowser opens url in the desktop's browser, if there is one; failing is fine, the URL is
// printed.
func openBrowser(url string) {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	cmd := exec.Command(name, url)
	if err := cmd.Start(); err == nil {
		go func() { _ = cmd.Wait() }()
	}
}
