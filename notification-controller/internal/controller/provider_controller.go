package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/yaml"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
	"github.com/plumb-dev/plumb/shared/certs"
	"github.com/plumb-dev/plumb/shared/gitauth"
	"github.com/plumb-dev/plumb/shared/proxy"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/redact"
	"github.com/plumb-dev/plumb/shared/status"
)

// +kubebuilder:rbac:groups=notification.plumb.dev,resources=providers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=notification.plumb.dev,resources=providers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=get;list;watch

// ProviderReconciler checks that a Provider has what its type needs, and that the controller's
// rules let it deliver.
type ProviderReconciler struct {
	client.Client
	APIReader      client.Reader
	ControllerName string
	// Senders are the controller-wide rules of deliveries (the Dispatcher's own).
	Senders SenderOptions
}

// SenderOptions are the controller-wide rules every Provider's deliveries follow. The zero
// value is the safe default: the address policy's default refusals, and no credentials over
// plain HTTP.
type SenderOptions struct {
	// Addresses decides which addresses deliveries may connect to (nil: the default refusals).
	Addresses *notify.AddressPolicy
	// AllowInsecureHTTP lets a Provider send credentials from its Secret to an http:// address.
	AllowInsecureHTTP bool
	// Identity obtains the tokens of Providers that name a ServiceAccount (nil: refused, as
	// without the feature gate).
	Identity *CloudIdentity
}

// InsecureHTTPFlag is the flag that sets SenderOptions.AllowInsecureHTTP.
const InsecureHTTPFlag = "--provider-allow-insecure-http"

// SetupWithManager registers the reconciler.
func (r *ProviderReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&notifyv1.Provider{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// Reconcile marks the Provider Ready when it can deliver.
func (r *ProviderReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &notifyv1.Provider{}
	if found, err := status.Get(ctx, r.Client, notifyv1.ProviderKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		status.Finish(ctx, obj, status.Fields{Kind: notifyv1.ProviderKind, ObservedGeneration: &obj.Status.ObservedGeneration,
			Requests: &obj.Status.ReconcileRequestStatus}, patcher, r.ControllerName, &result, &retErr)
	}()
	// An expression that does not compile will not compile on retry.
	if _, err := statusText(obj); err != nil {
		return ctrl.Result{}, status.Stall(nil, obj, notifyv1.InvalidCELExpressionReason, err.Error())
	}
	var ie *identitySpecError
	if err := r.Senders.Identity.checkIdentity(obj); errors.As(err, &ie) {
		return ctrl.Result{}, status.Stall(nil, obj, ie.reason, ie.msg)
	}
	if _, err := SenderFor(ctx, r.APIReader, obj, r.Senders); err != nil {
		if errors.As(err, &ie) && ie.stall {
			return ctrl.Result{}, status.Stall(nil, obj, ie.reason, ie.msg)
		}
		reason := refusalReason(err)
		var nf *secretError
		switch {
		case reason != "":
		case errors.As(err, &nf):
			reason = notifyv1.SecretNotFoundReason
		default:
			reason = notifyv1.InvalidProviderReason
		}
		return ctrl.Result{}, status.Fail(nil, obj, "", reason, err)
	}
	conditions.MarkTrue(obj, meta.ReadyCondition, notifyv1.SucceededReason, "%s provider ready", obj.Spec.Type)
	return ctrl.Result{}, nil
}

// secretError marks a missing Secret or key.
type secretError struct{ msg string }

func (e *secretError) Error() string { return e.msg }

// plainHTTPError refuses to send a Provider's credentials in clear text.
type plainHTTPError struct{ host string }

func (e *plainHTTPError) Error() string {
	return fmt.Sprintf("refused to send the Provider's credentials (Secret token, headers or address) in clear text to http://%s: use https, or start notification-controller with %s", e.host, InsecureHTTPFlag)
}

// refusalReason is the Ready reason of an error the controller's rules made, or "".
func refusalReason(err error) string {
	var ar *notify.AddressRefusedError
	var ph *plainHTTPError
	var ie *identitySpecError
	switch {
	case errors.As(err, &ie):
		return ie.reason
	case errors.As(err, &ar):
		return notifyv1.AddressRefusedReason
	case errors.As(err, &ph):
		return notifyv1.PlainHTTPRefusedReason
	case errors.Is(err, proxy.ErrProxy):
		return notifyv1.ProxyFailedReason
	case errors.Is(err, gitauth.ErrAuth):
		return notifyv1.AuthenticationFailedReason
	}
	return ""
}

// deliveryReason is the Ready reason of a failed delivery.
func deliveryReason(err error) string {
	if r := refusalReason(err); r != "" {
		return r
	}
	return notifyv1.DeliveryFailedReason
}

// SenderFor makes the Sender of a Provider from its spec and Secret, and checks it against the
// controller's rules: an address the policy refuses (checked again at every connection), or
// credentials over plain HTTP, make an error.
func SenderFor(ctx context.Context, r client.Reader, p *notifyv1.Provider, o SenderOptions) (notify.Sender, error) {
	address, token, proxyURL := p.Spec.Address, "", p.Spec.Proxy
	headers := map[string]string{}
	addressInSecret := false
	var data map[string][]byte
	if ref := p.Spec.SecretRef; ref != nil {
		s := &corev1.Secret{}
		key := types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}
		if err := r.Get(ctx, key, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &secretError{fmt.Sprintf("Secret %s not found", key)}
			}
			return nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		if a := string(s.Data["address"]); a != "" {
			address, addressInSecret = a, true
		}
		data = s.Data
		token = string(s.Data["token"])
		if v := string(s.Data["proxy"]); v != "" {
			proxyURL = v
		}
		if h := s.Data["headers"]; len(h) > 0 {
			if err := yaml.Unmarshal(h, &headers); err != nil {
				return nil, fmt.Errorf("headers of Secret %s is not a YAML map of strings", key)
			}
		}
	}
	var px *proxy.Proxy
	if ref := p.Spec.ProxySecretRef; ref != nil {
		var err error
		if px, err = proxy.FromSecret(ctx, r, p.Namespace, ref.Name); err != nil {
			return nil, err
		}
		proxyURL = "" // proxySecretRef wins
	}
	hc, tlsConfig, err := httpClientOf(ctx, r, p, proxyURL, px, o.Addresses)
	if err != nil {
		return nil, err
	}
	if p.Spec.ServiceAccountName != "" {
		// The ServiceAccount's cloud identity is the credential: none may come from the Secret.
		if token != "" || strings.Contains(address, "Endpoint=") {
			return nil, &identitySpecError{reason: notifyv1.InvalidSpecReason,
				msg: "spec.serviceAccountName and the Secret's token (or connection string) both give credentials: keep one"}
		}
		// The exchange goes through the Provider's proxy, which the address policy must allow
		// first (its client dials without the policy).
		if err := checkProxies(ctx, o.Addresses, proxyURL, px); err != nil {
			return nil, err
		}
		if token, err = o.Identity.token(ctx, p, exchangeProxy(proxyURL, px)); err != nil {
			return nil, err
		}
	}
	text, err := statusText(p)
	if err != nil {
		return nil, err
	}
	cfg := senderConfig{Provider: p, Address: address, Token: token, Headers: headers, Data: data, Client: hc, Status: text,
		TLS: tlsConfig, Addresses: o.Addresses, AllowInsecure: o.AllowInsecureHTTP}
	var app *gitauth.GitHubApp
	if providerTypes[p.Spec.Type].githubApp && gitauth.IsGitHubApp(data) {
		if app, err = gitauth.GitHubAppFromSecret(data, notify.APIFor(address)); err != nil {
			return nil, err
		}
		cfg.APIURL, cfg.TokenSource = app.APIURL, appTokens(app, hc)
	}
	s, err := senderOf(cfg)
	if err != nil {
		return nil, err
	}
	if app != nil {
		// The app's JWT and token go to its API: the same rules as the address.
		if u, err := url.Parse(app.APIURL); err == nil && u.Scheme == "http" && !o.AllowInsecureHTTP {
			return nil, &plainHTTPError{host: u.Host}
		}
		if err := o.Addresses.CheckURL(ctx, app.APIURL); err != nil {
			return nil, fmt.Errorf("githubAppBaseURL: %w", err)
		}
	}
	if p.Spec.Type == notifyv1.SlackProvider && token != "" {
		return s, nil // the Web API at slack.com, over https
	}
	// What is secret about a Provider is in its Secret: an API token (the Git hosts) or password
	// (basic auth) of the types that send one, headers, an address (webhook URLs hold tokens),
	// or a password in the URL. The HMAC key of generic-hmac never leaves.
	if u, err := url.Parse(address); err == nil && u.Scheme == "http" && !o.AllowInsecureHTTP {
		secretToken := token != "" || len(data["password"]) > 0 || app != nil
		if (providerTypes[p.Spec.Type].sendsToken && secretToken) || len(headers) > 0 || addressInSecret || u.User != nil {
			return nil, &plainHTTPError{host: u.Host}
		}
	}
	if err := o.Addresses.CheckURL(ctx, address); err != nil {
		return nil, err
	}
	if err := checkProxies(ctx, o.Addresses, proxyURL, px); err != nil {
		return nil, err
	}
	return s, nil
}

// checkProxies holds the Provider's proxy (spec.proxy or the Secret's, or proxySecretRef's) to
// the address policy.
func checkProxies(ctx context.Context, policy *notify.AddressPolicy, proxyURL string, px *proxy.Proxy) error {
	if proxyURL != "" {
		if err := policy.CheckURL(ctx, proxyURL); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
	}
	if px != nil {
		if err := policy.CheckURL(ctx, px.URL.String()); err != nil {
			return fmt.Errorf("%w: proxy %s: %w", proxy.ErrProxy, px.Host(), err)
		}
	}
	return nil
}

// appTokens gives a GitHub App's installation token, asked for through the Provider's client
// (its proxy, certificates and address policy) and shared by every Provider of the app through
// the process's cache.
func appTokens(app *gitauth.GitHubApp, hc *http.Client) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		tok, err := gitauth.DefaultGitHubTokens.Token(ctx, app, hc)
		if err != nil {
			var ar *notify.AddressRefusedError
			if errors.Is(err, gitauth.ErrAuth) || errors.As(err, &ar) {
				return "", err
			}
			return "", &notify.RetryableError{Err: err}
		}
		return tok.Token, nil
	}
}

// httpClientOf returns the HTTP client of a Provider's proxy and certSecretRef, whose
// connections follow the address policy, and the TLS configuration of certSecretRef (nil
// without one).
func httpClientOf(ctx context.Context, r client.Reader, p *notifyv1.Provider, rawProxy string, px *proxy.Proxy, policy *notify.AddressPolicy) (*http.Client, *tls.Config, error) {
	var proxyURL *url.URL
	if rawProxy != "" {
		u, err := url.Parse(rawProxy)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5") {
			return nil, nil, fmt.Errorf("proxy %q is not an http, https or socks5 URL with a host", redact.URL(rawProxy))
		}
		proxyURL = u
	}
	var tlsConfig *tls.Config
	if ref := p.Spec.CertSecretRef; ref != nil {
		s := &corev1.Secret{}
		key := types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}
		if err := r.Get(ctx, key, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil, &secretError{fmt.Sprintf("certSecretRef: Secret %s not found", key)}
			}
			return nil, nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		cfg, err := certs.FromSecret(s.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("certSecretRef %s: %w", key, err)
		}
		if cfg == nil {
			return nil, nil, &secretError{fmt.Sprintf("certSecretRef: Secret %s has none of ca.crt, tls.crt and tls.key", key)}
		}
		tlsConfig = cfg
	}
	if px != nil {
		hc := policy.ClientVia(px.Func(), tlsConfig)
		hc.Transport = proxy.Explained{Next: hc.Transport, Proxy: px}
		return hc, tlsConfig, nil
	}
	return policy.Client(proxyURL, tlsConfig), tlsConfig, nil
}

// exchangeProxy is the proxy a cloud identity's token exchange goes through: the Provider's.
func exchangeProxy(proxyURL string, px *proxy.Proxy) *url.URL {
	if px != nil {
		return px.FullURL()
	}
	if proxyURL == "" {
		return nil
	}
	u, err := url.Parse(proxyURL)
	if err != nil {
		return nil
	}
	return u
}
