package controller

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/fluxcd/pkg/auth"
	"github.com/fluxcd/pkg/auth/azure"
	"github.com/fluxcd/pkg/auth/gcp"
	"github.com/fluxcd/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/gitauth"
)

// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create

// CloudIdentity obtains the cloud access tokens of the Providers that name a ServiceAccount
// (spec.serviceAccountName): a token of the ServiceAccount, exchanged by fluxcd/pkg/auth for
// Entra ID's or Google's, cached until shortly before it expires (keyed by the ServiceAccount,
// its identity annotations, the scope and the proxy).
type CloudIdentity struct {
	// Enabled is the ObjectLevelWorkloadIdentity feature gate.
	Enabled bool
	// Kube reads the ServiceAccounts and asks for their tokens (TokenRequest).
	Kube client.Client
	// Azure and GCP exchange the tokens: the zero values in the controller; tests give them an
	// Implementation.
	Azure azure.Provider
	GCP   gcp.Provider

	cache *cache.TokenCache
}

// NewCloudIdentity returns the identity of the controller's flags; cacheSize bounds the tokens
// kept.
func NewCloudIdentity(enabled bool, cacheSize int, kube client.Client) (*CloudIdentity, error) {
	c, err := cache.NewTokenCache(cacheSize)
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	if enabled {
		// fluxcd/pkg/auth checks its own process-wide gate before an exchange.
		auth.EnableObjectLevelWorkloadIdentity()
	}
	return &CloudIdentity{Enabled: enabled, Kube: kube, cache: c}, nil
}

// exchangeTimeout bounds one token exchange (the ServiceAccount's token and the cloud's).
const exchangeTimeout = 15 * time.Second

// identityScopes are the types that take spec.serviceAccountName, with the scope of their
// token (googlepubsub: the exchange's own, which covers Pub/Sub).
var identityScopes = map[string]string{
	notifyv1.AzureEventHubProvider: azure.ScopeEventHubs,
	notifyv1.AzureDevOpsProvider:   azure.ScopeDevOps,
	notifyv1.GooglePubSubProvider:  "",
}

// identitySpecError is a spec.serviceAccountName that cannot work as written: with stall,
// one that only a change of the Provider (or of the controller's flags) mends; without, one
// that a change of its Secret does.
type identitySpecError struct {
	reason, msg string
	stall       bool
}

func (e *identitySpecError) Error() string { return e.msg }

// checkIdentity says whether p's serviceAccountName can be used: its type takes one and the
// controller runs with the feature gate.
func (c *CloudIdentity) checkIdentity(p *notifyv1.Provider) error {
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		return nil
	}
	if _, ok := identityScopes[p.Spec.Type]; !ok {
		return &identitySpecError{reason: notifyv1.InvalidSpecReason, stall: true, msg: fmt.Sprintf(
			"spec.serviceAccountName is for the types that authenticate with a cloud identity (azureeventhub, azuredevops, googlepubsub), not %s", p.Spec.Type)}
	}
	if c == nil || !c.Enabled {
		return &identitySpecError{reason: notifyv1.FeatureGateDisabledReason, stall: true, msg: fmt.Sprintf(
			"spec.serviceAccountName %s names the cloud identity, which needs the controller flag --feature-gates=%s=true", sa, auth.FeatureGateObjectLevelWorkloadIdentity)}
	}
	return nil
}

// token is the access token of p's ServiceAccount for its type, obtained through proxyURL
// when set. Errors wrap gitauth.ErrAuth (AuthenticationFailed) and never hold a token.
func (c *CloudIdentity) token(ctx context.Context, p *notifyv1.Provider, proxyURL *url.URL) (string, error) {
	if err := c.checkIdentity(p); err != nil {
		return "", err
	}
	sa := p.Spec.ServiceAccountName
	opts := []auth.Option{
		auth.WithClient(c.Kube), auth.WithServiceAccountNamespace(p.Namespace), auth.WithServiceAccountName(sa),
		auth.WithCache(*c.cache, cache.InvolvedObject{Kind: notifyv1.ProviderKind, Name: p.Name, Namespace: p.Namespace, Operation: cache.OperationReconcile}),
	}
	if proxyURL != nil {
		opts = append(opts, auth.WithProxyURL(*proxyURL))
	}
	var provider auth.Provider = c.Azure
	if p.Spec.Type == notifyv1.GooglePubSubProvider {
		provider = c.GCP
	}
	if scope := identityScopes[p.Spec.Type]; scope != "" {
		opts = append(opts, auth.WithScopes(scope))
	}
	// A bound on the exchange: the token cache is locked while it runs.
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	t, err := auth.GetAccessToken(ctx, provider, opts...)
	if err != nil {
		return "", fmt.Errorf("%w: %s token of ServiceAccount %s/%s: %s", gitauth.ErrAuth, provider.GetName(), p.Namespace, sa, strings.Join(strings.Fields(err.Error()), " "))
	}
	switch t := t.(type) {
	case *azure.Token:
		return t.Token, nil
	case *gcp.Token:
		return t.AccessToken, nil
	}
	return "", errors.New("the cloud identity gave no access token")
}
