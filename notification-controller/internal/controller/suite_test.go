package controller

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
	"github.com/plumb-dev/plumb/notification-controller/internal/receiver"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

var (
	env     *testenv.Env
	k8s     client.Client
	hookURL string // the webhook server on loopback
	// cached is the manager's cache, with the webhook path index, for Servers of tests.
	cached client.Reader
	// google plays Google for gcr Receivers: the webhook server fetches its keys.
	google *testIssuer
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(notifyv1.AddToScheme(scheme))
	var err error
	env, err = testenv.Start(testenv.Options{Scheme: scheme})
	must(err)
	defer func() { must(env.Stop()) }()
	k8s = env.Client
	// Providers labelled ownStackLabel are left to tests that run a stack of their own.
	notOwn, err := labels.Parse("!" + ownStackLabel)
	must(err)
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{&notifyv1.Provider{}: {Label: notOwn}}}})
	must(err)
	cached = mgr.GetCache()
	// The sinks of these tests listen on loopback, which the default address policy refuses.
	senders := SenderOptions{Addresses: &notify.AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	must((&ReceiverReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: mgr.GetEventRecorder("notification-controller"),
		ControllerName: "notification-controller", NoCrossNamespaceRefs: true}).SetupWithManager(ctx, mgr, Options{Concurrent: 2}))
	must((&ProviderReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), ControllerName: "notification-controller", Senders: senders}).SetupWithManager(ctx, mgr, Options{Concurrent: 2}))
	must((&AlertReconciler{Client: mgr.GetClient(), ControllerName: "notification-controller", NoCrossNamespaceRefs: true}).SetupWithManager(ctx, mgr, Options{Concurrent: 2}))
	must(mgr.Add(&Dispatcher{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: kubernetes.NewForConfigOrDie(env.Config).EventsV1(),
		ControllerName: "notification-controller", NoCrossNamespaceRefs: true, Backoff: 50 * time.Millisecond, GroupWindow: 300 * time.Millisecond, Senders: senders}))
	google, err = startIssuer()
	must(err)
	defer google.Close()
	srv := httptest.NewServer(&Server{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: mgr.GetEventRecorder("notification-controller"),
		NoCrossNamespaceRefs: true, Rate: 5, Burst: 5, Tokens: &receiver.Tokens{GoogleJWKS: google.URL + "/keys"}})
	defer srv.Close()
	hookURL = srv.URL
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	must(<-done)
	return code
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// expectStalled reads obj again and checks, in an Eventually, that it is Stalled with reason
// (when not empty) and a Ready message that holds each of msgs.
func expectStalled(g Gomega, obj conditions.Getter, reason string, msgs ...string) {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	g.Expect(conditions.IsStalled(obj)).To(BeTrue(), "%s is not Stalled: %s", obj.GetName(), conditions.GetMessage(obj, meta.ReadyCondition))
	if reason != "" {
		g.Expect(conditions.GetReason(obj, meta.ReadyCondition)).To(Equal(reason))
	}
	for _, m := range msgs {
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(m))
	}
}
