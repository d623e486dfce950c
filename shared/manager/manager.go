// Package manager holds what every Plumb controller's main does alike: the common flags, the
// logger, and a controller-runtime manager made from them.
package manager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Options are the flags every controller takes.
type Options struct {
	MetricsAddr, HealthAddr, PprofAddr, WatchLabels string
	Concurrent, APIBurst                            int
	APIQPS                                          float64
	LeaderElect, LogDevelopment                     bool
	LeaderElection                                  LeaderElection
}

// LeaderElection tunes the lease replicas compete for. A leader that cannot renew its lease
// within RenewDeadline (an API server outage longer than that) stops, and the process exits
// with an error for its Deployment to start it again: it cannot know whether another replica
// took over meanwhile, and everything it needs is read back from the API at start.
type LeaderElection struct {
	Namespace                                 string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Bind registers the common flags on fs.
func (o *Options) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.StringVar(&o.HealthAddr, "health-addr", ":9440", "Address of the /healthz and /readyz probes.")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "Address of the Go profiler endpoints (/debug/pprof); empty disables them.")
	fs.IntVar(&o.Concurrent, "concurrent", 4, "Reconciles that may run at once.")
	fs.Float64Var(&o.APIQPS, "kube-api-qps", -1, "Requests per second to the Kubernetes API, on average; negative leaves throttling to the API server's priority and fairness.")
	fs.IntVar(&o.APIBurst, "kube-api-burst", 300, "Requests to the Kubernetes API in a burst, when --kube-api-qps is positive.")
	fs.StringVar(&o.WatchLabels, "watch-label-selector", "", "Reconcile only the objects of this controller's kinds that match this label selector (sharding).")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "Elect a leader among replicas; only the leader reconciles.")
	fs.StringVar(&o.LeaderElection.Namespace, "leader-election-namespace", "", "Namespace of the leader election lease (default: the pod's own namespace; needed outside a cluster).")
	fs.DurationVar(&o.LeaderElection.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "How long a lease holds without renewal: a replica takes over at most this long after the leader stopped renewing.")
	fs.DurationVar(&o.LeaderElection.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew its lease before it gives up and the process exits (to be started again).")
	fs.DurationVar(&o.LeaderElection.RetryPeriod, "leader-election-retry-period", 2*time.Second, "How often replicas try to acquire or renew the lease.")
	fs.BoolVar(&o.LogDevelopment, "log-development", false, "Human-readable console logs instead of JSON.")
}

// Main parses the flags, installs the logger, and runs the controller named name until a signal
// stops it; an error is logged and exits 1.
func (o *Options) Main(name string, run func(context.Context) error) {
	flag.Parse()
	o.SetLogger()
	if err := run(ctrl.SetupSignalHandler()); err != nil {
		ctrl.Log.WithName(name).Error(err, "exiting")
		os.Exit(1)
	}
}

// SetLogger installs the zap logger the flags ask for.
func (o *Options) SetLogger() {
	ctrl.SetLogger(zap.New(zap.UseDevMode(o.LogDevelopment), zap.StacktraceLevel(zapcore.PanicLevel)))
}

// leaderElectionID names the lease of the controller name. Each shard (a
// --watch-label-selector) elects its own leader: with one lease for all, the leader of one shard
// would keep every other shard from reconciling. The selector is hashed in its canonical form,
// so replicas of one shard agree however its flag was spelled.
func leaderElectionID(name string, sel labels.Selector) string {
	if sel.Empty() {
		return name + ".plumb.dev"
	}
	sum := sha256.Sum256([]byte(sel.String()))
	return fmt.Sprintf("%s-%s.plumb.dev", name, hex.EncodeToString(sum[:5]))
}

// New makes the manager of the controller name, with client-go's kinds and those addToScheme
// registers: its own kinds (sharded by
// --watch-label-selector), objects never cached (Secrets and the like, read when named), the
// probes, and client-side throttling only when --kube-api-qps is positive.
func (o *Options) New(name string, addToScheme func(*runtime.Scheme) error, own []client.Object, uncached []client.Object) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), addToScheme(scheme)); err != nil {
		return nil, err
	}
	cacheOpts := cache.Options{}
	sel := labels.Everything()
	if o.WatchLabels != "" {
		var err error
		if sel, err = labels.Parse(o.WatchLabels); err != nil {
			return nil, fmt.Errorf("--watch-label-selector: %w", err)
		}
		cacheOpts.ByObject = map[client.Object]cache.ByObject{}
		for _, obj := range own {
			cacheOpts.ByObject[obj] = cache.ByObject{Label: sel}
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = float32(o.APIQPS), o.APIBurst
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.HealthAddr,
		PprofBindAddress:              o.PprofAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              leaderElectionID(name, sel),
		LeaderElectionNamespace:       o.LeaderElection.Namespace,
		LeaseDuration:                 durationOrNil(o.LeaderElection.LeaseDuration),
		RenewDeadline:                 durationOrNil(o.LeaderElection.RenewDeadline),
		RetryPeriod:                   durationOrNil(o.LeaderElection.RetryPeriod),
		LeaderElectionReleaseOnCancel: true,
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: uncached}},
	})
	if err != nil {
		return nil, err
	}
	if err := errors.Join(mgr.AddHealthzCheck("ping", healthz.Ping), mgr.AddReadyzCheck("ping", healthz.Ping)); err != nil {
		return nil, err
	}
	return mgr, nil
}

// durationOrNil leaves a zero duration to controller-runtime's default.
func durationOrNil(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}
