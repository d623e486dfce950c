// Command source-controller turns sources into artifacts: flags, manager and wiring only.
package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/plumb-dev/plumb/shared/hostlimit"
	plumbmanager "github.com/plumb-dev/plumb/shared/manager"
	"github.com/plumb-dev/plumb/shared/registry"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
	"github.com/plumb-dev/plumb/source-controller/internal/controller"
	"github.com/plumb-dev/plumb/source-controller/internal/git"
	"github.com/plumb-dev/plumb/source-controller/internal/helm"
	"github.com/plumb-dev/plumb/source-controller/internal/storage"
)

const controllerName = "source-controller"

type options struct {
	plumbmanager.Options
	hosts                                    hostlimit.Options
	cloud                                    registry.CloudFlags
	storagePath, storageAddr, storageAdvAddr string
	artifactRetention                        int
	requireVerification                      string
}

func main() {
	var o options
	o.Bind(flag.CommandLine)
	o.hosts.Bind(flag.CommandLine)
	o.cloud.Bind(flag.CommandLine)
	flag.StringVar(&o.storagePath, "storage-path", "/data", "Folder where artifacts are stored.")
	flag.StringVar(&o.storageAddr, "storage-addr", ":9090", "Address the artifact HTTP server listens on.")
	flag.StringVar(&o.storageAdvAddr, "storage-adv-addr", "", "Address artifacts are advertised at, host[:port] or a URL (default: this host and the storage port).")
	flag.IntVar(&o.artifactRetention, "artifact-retention", 2, "Artifacts kept per object, the current one included.")
	flag.StringVar(&o.requireVerification, "require-verification", "", "Comma-separated kinds (GitRepository, OCIRepository, HelmChart) whose objects must have spec.verify: the others are Stalled with reason VerificationRequired.")
	o.Main(controllerName, func(ctx context.Context) error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	// A bad policy stops the process before it serves anything.
	requireVerification, err := controller.ParseRequireVerification(o.requireVerification)
	if err != nil {
		return err
	}
	// Secrets and ServiceAccounts are read only when a source names one: no cluster-wide cache.
	mgr, err := o.New(controllerName, sourcev1.AddToScheme,
		[]client.Object{&sourcev1.GitRepository{}, &sourcev1.OCIRepository{}, &sourcev1.HelmRepository{}, &sourcev1.HelmChart{}, &sourcev1.Bucket{}},
		[]client.Object{&corev1.Secret{}, &corev1.ServiceAccount{}})
	if err != nil {
		return err
	}
	st, err := storage.New(o.storagePath, advertisedURL(o.storageAdvAddr, o.storageAddr), o.artifactRetention)
	if err != nil {
		return err
	}
	if err := mgr.Add(storageServer(o.storageAddr, st)); err != nil {
		return err
	}
	// One bound per remote host for every kind, and short connect and first-byte deadlines for
	// every client, so that a host that hangs costs its own slots, not the workers.
	git.SetDeadlines(o.hosts.Deadlines)
	helm.SetDeadlines(o.hosts.Deadlines)
	registry.SetDeadlines(o.hosts.Deadlines)
	bucket.SetDeadlines(o.hosts.Deadlines)
	// One token cache for every object of the process that uses a cloud provider.
	cloud, err := o.cloud.Cloud()
	if err != nil {
		return err
	}
	copts := controller.Options{Concurrent: o.Concurrent, Hosts: o.hosts.Limiter(), HostBusyRetry: o.hosts.BusyRetry, RequireVerification: requireVerification}
	r := &controller.GitRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
	}
	if err := r.SetupWithManager(ctx, mgr, copts); err != nil {
		return err
	}
	oci := &controller.OCIRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
		Cloud:          cloud,
	}
	if err := oci.SetupWithManager(ctx, mgr, copts); err != nil {
		return err
	}
	helmRepos := &controller.HelmRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
	}
	if err := helmRepos.SetupWithManager(ctx, mgr, copts); err != nil {
		return err
	}
	charts := &controller.HelmChartReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
		Cloud:          cloud,
	}
	if err := charts.SetupWithManager(ctx, mgr, copts); err != nil {
		return err
	}
	buckets := &controller.BucketReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
		Cloud:          cloud,
	}
	if err := buckets.SetupWithManager(ctx, mgr, copts); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// advertisedURL turns --storage-adv-addr (or the host name and the storage port) into a base URL.
func advertisedURL(adv, listen string) string {
	if adv == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(listen)
		adv = net.JoinHostPort(host, port)
	}
	if strings.HasPrefix(adv, "http://") || strings.HasPrefix(adv, "https://") {
		return strings.TrimSuffix(adv, "/")
	}
	return "http://" + adv
}

// storageServer serves the artifacts on every replica, leader or not.
func storageServer(addr string, st *storage.Storage) manager.Runnable {
	return everyReplica(func(ctx context.Context) error {
		srv := &http.Server{Addr: addr, Handler: st.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		}()
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}

// everyReplica is a runnable that does not wait for leader election.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
