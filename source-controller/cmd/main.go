// Command source-controller turns sources into artifacts: flags, manager and wiring only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/controller"
	"github.com/plumb-dev/plumb/source-controller/internal/storage"
)

const controllerName = "source-controller"

func main() {
	var (
		metricsAddr, healthAddr, pprofAddr   string
		storagePath, storageAddr             string
		storageAdvAddr, watchLabels          string
		artifactRetention, workers, apiBurst int
		apiQPS                               float64
		leaderElect, logDevelopment          bool
	)
	flag.StringVar(&metricsAddr, "metrics-addr", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&healthAddr, "health-addr", ":9440", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&pprofAddr, "pprof-addr", "", "Address of the Go profiler endpoints (/debug/pprof); empty disables them.")
	flag.StringVar(&storagePath, "storage-path", "/data", "Folder where artifacts are stored.")
	flag.StringVar(&storageAddr, "storage-addr", ":9090", "Address the artifact HTTP server listens on.")
	flag.StringVar(&storageAdvAddr, "storage-adv-addr", "", "Address artifacts are advertised at, host[:port] or a URL (default: this host and the storage port).")
	flag.IntVar(&artifactRetention, "artifact-retention", 2, "Artifacts kept per object, the current one included.")
	flag.IntVar(&workers, "concurrent", 4, "Reconciles that may run at once.")
	flag.Float64Var(&apiQPS, "kube-api-qps", -1, "Requests per second to the Kubernetes API, on average; negative leaves throttling to the API server's priority and fairness.")
	flag.IntVar(&apiBurst, "kube-api-burst", 300, "Requests to the Kubernetes API in a burst, when --kube-api-qps is positive.")
	flag.StringVar(&watchLabels, "watch-label-selector", "", "Reconcile only objects matching this label selector (sharding).")
	flag.BoolVar(&leaderElect, "leader-elect", true, "Elect a leader among replicas; only the leader reconciles.")
	flag.BoolVar(&logDevelopment, "log-development", false, "Human-readable console logs instead of JSON.")
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseDevMode(logDevelopment), zap.StacktraceLevel(zapcore.PanicLevel)))
	log := ctrl.Log.WithName(controllerName)
	if err := run(ctrl.SetupSignalHandler(), runOptions{
		metricsAddr, healthAddr, pprofAddr, storagePath, storageAddr, storageAdvAddr, watchLabels,
		artifactRetention, workers, apiBurst, apiQPS, leaderElect,
	}); err != nil {
		log.Error(err, "exiting")
		os.Exit(1)
	}
}

type runOptions struct {
	metricsAddr, healthAddr, pprofAddr, storagePath, storageAddr, storageAdvAddr, watchLabels string
	artifactRetention, workers, apiBurst                                                      int
	apiQPS                                                                                    float64
	leaderElect                                                                               bool
}

func run(ctx context.Context, o runOptions) error {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), sourcev1.AddToScheme(scheme)); err != nil {
		return err
	}
	cacheOpts := cache.Options{}
	if o.watchLabels != "" {
		sel, err := labels.Parse(o.watchLabels)
		if err != nil {
			return fmt.Errorf("--watch-label-selector: %w", err)
		}
		cacheOpts.ByObject = map[client.Object]cache.ByObject{&sourcev1.GitRepository{}: {Label: sel}}
	}
	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(o.apiQPS), o.apiBurst
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:        o.healthAddr,
		PprofBindAddress:              o.pprofAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "source-controller.plumb.dev",
		LeaderElectionReleaseOnCancel: true,
		// Secrets and ServiceAccounts are read only when a source names one: no cluster-wide cache.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ServiceAccount{}}}},
	})
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
	r := &controller.GitRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.workers}); err != nil {
		return err
	}
	oci := &controller.OCIRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
	}
	if err := oci.SetupWithManager(mgr, controller.Options{Concurrent: o.workers}); err != nil {
		return err
	}
	helmRepos := &controller.HelmRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
	}
	if err := helmRepos.SetupWithManager(mgr, controller.Options{Concurrent: o.workers}); err != nil {
		return err
	}
	charts := &controller.HelmChartReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder(controllerName),
		Storage:        st,
		ControllerName: controllerName,
	}
	if err := charts.SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.workers}); err != nil {
		return err
	}
	if err := errors.Join(mgr.AddHealthzCheck("ping", healthz.Ping), mgr.AddReadyzCheck("ping", healthz.Ping)); err != nil {
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
