// Command notification-controller sends the events of Plumb objects to chat and webhooks
// (Providers, Alerts) and serves Receiver webhooks that make Plumb reconcile at once: flags,
// manager and wiring only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/fluxcd/pkg/auth"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/controller"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
	"github.com/plumb-dev/plumb/notification-controller/internal/receiver"
	"github.com/plumb-dev/plumb/shared/featuregate"
	plumbmanager "github.com/plumb-dev/plumb/shared/manager"
)

const controllerName = "notification-controller"

type options struct {
	plumbmanager.Options
	receiverAddr         string
	dedupWindow          time.Duration
	allowCIDRs           []netip.Prefix
	allowInsecureHTTP    bool
	noCrossNamespaceRefs bool
	gcrJWKSURL           string
	gates                featuregate.Gates
	tokenCacheSize       int
}

func main() {
	var o options
	o.Bind(flag.CommandLine)
	o.gates = featuregate.New(auth.FeatureGateObjectLevelWorkloadIdentity)
	flag.Var(o.gates, "feature-gates", "Features on or off, Name=true|false separated by commas (Flux's flag). "+
		auth.FeatureGateObjectLevelWorkloadIdentity+" (default false): a Provider's spec.serviceAccountName is its cloud identity (azureeventhub, azuredevops, googlepubsub), obtained by a token exchange for that ServiceAccount.")
	flag.IntVar(&o.tokenCacheSize, "token-cache-max-size", 256, "Cloud tokens of Providers' ServiceAccounts kept in memory until shortly before they expire, one for each ServiceAccount, scope and proxy.")
	flag.StringVar(&o.receiverAddr, "receiver-addr", ":9292", "Address the Receiver webhooks are served on (by every replica).")
	flag.DurationVar(&o.dedupWindow, "dedup-window", 30*time.Second, "Drop an event equal to one an Alert sent within this window (0 keeps all).")
	flag.Func(strings.TrimPrefix(notify.AllowFlag, "--"), "CIDR prefixes or IP addresses (comma-separated, repeatable) Providers may deliver to although the address policy refuses them: loopback, link-local (cloud metadata), unspecified and the API server's address are refused by default; private ranges are allowed.", func(v string) error {
		p, err := notify.ParseAllow(v)
		o.allowCIDRs = append(o.allowCIDRs, p...)
		return err
	})
	flag.BoolVar(&o.allowInsecureHTTP, strings.TrimPrefix(controller.InsecureHTTPFlag, "--"), false, "Let Providers send credentials from their Secret (token, headers, address) to http:// addresses, in clear text.")
	flag.BoolVar(&o.noCrossNamespaceRefs, "no-cross-namespace-refs", true, "Refuse Receiver resources and Alert event sources in other namespaces than the Receiver's or Alert's.")
	flag.StringVar(&o.gcrJWKSURL, "receiver-gcr-jwks-url", receiver.GoogleJWKS, "Where the keys of Google's OIDC tokens (gcr Receivers) are fetched from; for tests.")
	o.Main(controllerName, func(ctx context.Context) error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	// Token and credentials Secrets are read when needed: never cached.
	mgr, err := o.New(controllerName, notifyv1.AddToScheme,
		[]client.Object{&notifyv1.Receiver{}, &notifyv1.Provider{}, &notifyv1.Alert{}}, []client.Object{&corev1.Secret{}})
	if err != nil {
		return err
	}
	apiServer, err := notify.APIServerEndpoints(ctx, mgr.GetConfig().Host)
	if err != nil {
		return err
	}
	// A Provider's ServiceAccount and its token are read and asked for when needed: not cached.
	kube, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	if o.tokenCacheSize <= 0 {
		return fmt.Errorf("--token-cache-max-size must be positive, got %d", o.tokenCacheSize)
	}
	identity, err := controller.NewCloudIdentity(o.gates[auth.FeatureGateObjectLevelWorkloadIdentity], o.tokenCacheSize, kube)
	if err != nil {
		return err
	}
	senders := controller.SenderOptions{AllowInsecureHTTP: o.allowInsecureHTTP,
		Addresses: &notify.AddressPolicy{Allow: o.allowCIDRs, APIServer: apiServer}, Identity: identity}
	events := mgr.GetEventRecorder(controllerName)
	r := &controller.ReceiverReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: events, ControllerName: controllerName,
		NoCrossNamespaceRefs: o.noCrossNamespaceRefs}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.Concurrent}); err != nil {
		return err
	}
	if err := (&controller.ProviderReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), ControllerName: controllerName, Senders: senders}).SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.Concurrent}); err != nil {
		return err
	}
	if err := (&controller.AlertReconciler{Client: mgr.GetClient(), ControllerName: controllerName, NoCrossNamespaceRefs: o.noCrossNamespaceRefs}).SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.Concurrent}); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	if err := mgr.Add(&controller.Dispatcher{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: cs.EventsV1(), ControllerName: controllerName,
		NoCrossNamespaceRefs: o.noCrossNamespaceRefs, DedupWindow: o.dedupWindow, Senders: senders}); err != nil {
		return err
	}
	// OIDC discovery and keys (gcr, generic-oidc) are fetched from addresses tenants write, as
	// deliveries are: the same address policy holds.
	tokenClient := senders.Addresses.ClientVia(http.ProxyFromEnvironment, nil)
	tokenClient.Timeout = 10 * time.Second
	srv := &controller.Server{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: events, NoCrossNamespaceRefs: o.noCrossNamespaceRefs,
		Tokens: &receiver.Tokens{Client: tokenClient, GoogleJWKS: o.gcrJWKSURL}}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		hs := &http.Server{Addr: o.receiverAddr, Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
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
	return mgr.Start(ctx)
}

// everyReplica is a runnable that does not wait for leader election.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
