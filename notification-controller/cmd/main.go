// Command notification-controller sends the events of Plumb objects to chat and webhooks
// (Providers, Alerts) and serves Receiver webhooks that make Plumb reconcile at once: flags,
// manager and wiring only.
package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/controller"
)

const controllerName = "notification-controller"

func main() {
	var metricsAddr, healthAddr, pprofAddr, receiverAddr string
	var workers int
	var leaderElect, logDevelopment bool
	flag.StringVar(&metricsAddr, "metrics-addr", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&healthAddr, "health-addr", ":9440", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&pprofAddr, "pprof-addr", "", "Address of the Go profiler endpoints (/debug/pprof); empty disables them.")
	flag.StringVar(&receiverAddr, "receiver-addr", ":9292", "Address the Receiver webhooks are served on.")
	flag.IntVar(&workers, "concurrent", 4, "Reconciles that may run at once.")
	flag.BoolVar(&leaderElect, "leader-elect", true, "Elect a leader among replicas; only the leader reconciles (every replica serves webhooks).")
	flag.BoolVar(&logDevelopment, "log-development", false, "Human-readable console logs instead of JSON.")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseDevMode(logDevelopment), zap.StacktraceLevel(zapcore.PanicLevel)))
	if err := run(ctrl.SetupSignalHandler(), metricsAddr, healthAddr, pprofAddr, receiverAddr, workers, leaderElect); err != nil {
		ctrl.Log.WithName(controllerName).Error(err, "exiting")
		os.Exit(1)
	}
}

func run(ctx context.Context, metricsAddr, healthAddr, pprofAddr, receiverAddr string, workers int, leaderElect bool) error {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), notifyv1.AddToScheme(scheme)); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        healthAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "notification-controller.plumb.dev",
		LeaderElectionReleaseOnCancel: true,
		// Token Secrets are read when a call comes: never cached.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return err
	}
	r := &controller.ReceiverReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: mgr.GetEventRecorder(controllerName), ControllerName: controllerName}
	if err := r.SetupWithManager(ctx, mgr, workers); err != nil {
		return err
	}
	if err := (&controller.ProviderReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), ControllerName: controllerName}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&controller.AlertReconciler{Client: mgr.GetClient(), ControllerName: controllerName}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.Add(&controller.Dispatcher{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Cache: mgr.GetCache(), ControllerName: controllerName}); err != nil {
		return err
	}
	srv := &controller.Server{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		hs := &http.Server{Addr: receiverAddr, Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
		go func() {
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(shutdown)
		}()
		if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})); err != nil {
		return err
	}
	if err := errors.Join(mgr.AddHealthzCheck("ping", healthz.Ping), mgr.AddReadyzCheck("ping", healthz.Ping)); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// everyReplica is a runnable that does not wait for leader election.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
