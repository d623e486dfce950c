// Command helm-controller installs, upgrades, tests, remediates and uninstalls HelmReleases with
// the Helm SDK: flags, manager and wiring only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
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
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/helm-controller/internal/controller"
	"github.com/plumb-dev/plumb/shared/artifact"
)

const controllerName = "helm-controller"

type options struct {
	metricsAddr, healthAddr, pprofAddr, watchLabels, defaultSA string
	workers, apiBurst                                          int
	apiQPS                                                     float64
	leaderElect, noCrossNamespaceRefs                          bool
	requeueDependency                                          time.Duration
}

func main() {
	var o options
	var logDevelopment bool
	flag.StringVar(&o.metricsAddr, "metrics-addr", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&o.healthAddr, "health-addr", ":9440", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&o.pprofAddr, "pprof-addr", "", "Address of the Go profiler endpoints (/debug/pprof); empty disables them.")
	flag.IntVar(&o.workers, "concurrent", 4, "Reconciles that may run at once.")
	flag.Float64Var(&o.apiQPS, "kube-api-qps", -1, "Requests per second to the Kubernetes API, on average; negative leaves throttling to the API server's priority and fairness.")
	flag.IntVar(&o.apiBurst, "kube-api-burst", 300, "Requests to the Kubernetes API in a burst, when --kube-api-qps is positive.")
	flag.StringVar(&o.watchLabels, "watch-label-selector", "", "Reconcile only HelmReleases matching this label selector (sharding).")
	flag.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader among replicas; only the leader reconciles.")
	flag.BoolVar(&o.noCrossNamespaceRefs, "no-cross-namespace-refs", false, "Refuse chartRef and dependsOn in other namespaces.")
	flag.StringVar(&o.defaultSA, "default-service-account", "", "ServiceAccount to impersonate when a HelmRelease names none.")
	flag.DurationVar(&o.requeueDependency, "requeue-dependency", 5*time.Second, "Wait before checking again a chart source or dependency that is not ready.")
	flag.BoolVar(&logDevelopment, "log-development", false, "Human-readable console logs instead of JSON.")
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseDevMode(logDevelopment), zap.StacktraceLevel(zapcore.PanicLevel)))
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.WithName(controllerName).Error(err, "exiting")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), helmv1.AddToScheme(scheme)); err != nil {
		return err
	}
	cacheOpts := cache.Options{}
	if o.watchLabels != "" {
		sel, err := labels.Parse(o.watchLabels)
		if err != nil {
			return fmt.Errorf("--watch-label-selector: %w", err)
		}
		cacheOpts.ByObject = map[client.Object]cache.ByObject{&helmv1.HelmRelease{}: {Label: sel}}
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
		LeaderElectionID:              "helm-controller.plumb.dev",
		LeaderElectionReleaseOnCancel: true,
		// Secrets and ConfigMaps are read when a HelmRelease names one: never cached.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}}},
	})
	if err != nil {
		return err
	}
	r := &controller.HelmReleaseReconciler{
		Client:                mgr.GetClient(),
		APIReader:             mgr.GetAPIReader(),
		Config:                mgr.GetConfig(),
		Events:                mgr.GetEventRecorder(controllerName),
		ControllerName:        controllerName,
		Fetcher:               &artifact.Fetcher{},
		DefaultServiceAccount: o.defaultSA,
		RequeueDependency:     o.requeueDependency,
		NoCrossNamespaceRefs:  o.noCrossNamespaceRefs,
	}
	if err := r.SetupWithManager(ctx, mgr, o.workers); err != nil {
		return err
	}
	if err := errors.Join(mgr.AddHealthzCheck("ping", healthz.Ping), mgr.AddReadyzCheck("ping", healthz.Ping)); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
