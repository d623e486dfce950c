package gitauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/fluxcd/pkg/auth"
	"github.com/fluxcd/pkg/auth/azure"
	"github.com/fluxcd/pkg/cache"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/proxy"
)

// Providers of a GitRepository's spec.provider, Flux's.
const (
	// ProviderGeneric: the credentials are in the Secret (or there are none).
	ProviderGeneric = "generic"
	// ProviderGitHub: the Secret holds a GitHub App; its installation token is the password.
	ProviderGitHub = "github"
	// ProviderAzure: an Entra ID token of the workload identity is the bearer token (Azure DevOps).
	ProviderAzure = "azure"
)

// Source says where a remote's credentials come from: the Secret's data, and the provider that
// turns them (or the workload's identity) into credentials.
type Source struct {
	// Provider is ProviderGeneric (or ""), ProviderGitHub or ProviderAzure.
	Provider string
	// Secret is the data of the credentials Secret, nil for none.
	Secret map[string][]byte
	// Proxy carries the Git connections and those to the provider's token service.
	Proxy *proxy.Proxy

	// Client, Namespace and ServiceAccountName are for azure with object-level workload
	// identity: a token of the ServiceAccount (created with Client) is exchanged for Entra's.
	// Without ServiceAccountName the controller's own identity is used.
	Client             client.Client
	Namespace          string
	ServiceAccountName string
}

// ProviderRemote builds the Remote for rawURL from src: NewRemote's for the generic provider, a
// GitHub App installation token as basic auth (x-access-token) for github, an Entra ID bearer
// token for azure. Tokens come from the process's caches; errors wrap ErrAuth or ErrInvalid
// and never hold a secret.
func ProviderRemote(ctx context.Context, rawURL string, src Source) (Remote, error) {
	switch src.Provider {
	case "", ProviderGeneric:
		r, err := NewRemote(rawURL, src.Secret)
		r.Proxy = src.Proxy
		return r, err
	case ProviderGitHub, ProviderAzure:
	default:
		return Remote{URL: rawURL}, fmt.Errorf("%w: provider %q is not one of generic, github, azure", ErrInvalid, src.Provider)
	}
	r := Remote{URL: rawURL, Proxy: src.Proxy}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return r, fmt.Errorf("%w: provider %s needs an http(s) URL", ErrInvalid, src.Provider)
	}
	if src.Provider == ProviderAzure {
		tok, err := azureToken(ctx, u, src)
		if err != nil {
			return r, err
		}
		r.Auth = &githttp.TokenAuth{Token: tok}
		return r, nil
	}
	if src.Secret == nil {
		return r, fmt.Errorf("%w: provider github needs spec.secretRef with the GitHub App (`%s`, `%s` or `%s`, `%s`)", ErrAuth,
			GitHubAppIDKey, GitHubAppInstallationIDKey, GitHubAppInstallationOwnerKey, GitHubAppPrivateKeyKey)
	}
	app, err := GitHubAppFromSecret(src.Secret, gitHubAPIFor(u))
	if err != nil {
		return r, err
	}
	hc, err := TokenClient(src.Proxy, src.Secret["ca.crt"])
	if err != nil {
		return r, err
	}
	// The client is this call's: its connection is not kept for the next token, an hour away.
	defer hc.CloseIdleConnections()
	tok, err := DefaultGitHubTokens.Token(ctx, app, hc)
	if err != nil {
		return r, src.Proxy.Explain(err)
	}
	r.Auth = &githttp.BasicAuth{Username: GitHubAccessTokenUser, Password: tok.Token}
	r.CABundle = src.Secret["ca.crt"]
	return r, nil
}

// gitHubAPIFor is the API of a repository's host when the Secret names none: api.github.com
// for github.com, <host>/api/v3 for GitHub Enterprise Server.
func gitHubAPIFor(repo *url.URL) string {
	if repo.Hostname() == "github.com" {
		return DefaultGitHubAPI
	}
	return repo.Scheme + "://" + repo.Host + "/api/v3"
}

// TokenClient is the HTTP client for a token service: through the proxy (unless NO_PROXY
// excludes the host), trusting caPEM on top of the system's authorities when set.
func TokenClient(px *proxy.Proxy, caPEM []byte) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	if len(caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%w: the Secret's `ca.crt` holds no PEM certificate", ErrAuth)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if px == nil {
		return &http.Client{Transport: tr}, nil
	}
	return &http.Client{Transport: px.Transport(tr)}, nil
}

// azureTokens is the process's cache of Entra ID tokens (fluxcd/pkg/auth's, bounded).
var azureTokens = newTokenCache()

func newTokenCache() *cache.TokenCache {
	c, err := cache.NewTokenCache(1000)
	if err != nil {
		panic(err) // only for a capacity below 1
	}
	return c
}

// azureProvider is fluxcd/pkg/auth's Azure provider; tests give it another implementation.
var azureProvider = azure.Provider{}

// azureToken gets an Entra ID token for Azure DevOps with the controller's workload identity, or
// the ServiceAccount's when named.
func azureToken(ctx context.Context, u *url.URL, src Source) (string, error) {
	opts := []auth.Option{auth.WithGitURL(*u)}
	if src.Proxy != nil && !proxy.Bypass(u.Host) {
		opts = append(opts, auth.WithProxyURL(*src.Proxy.FullURL()))
	}
	if src.ServiceAccountName != "" {
		opts = append(opts, auth.WithClient(src.Client), auth.WithServiceAccountName(src.ServiceAccountName),
			auth.WithServiceAccountNamespace(src.Namespace))
	}
	opts = append(opts, auth.WithCache(*azureTokens, cache.InvolvedObject{}))
	creds, err := auth.GetGitCredentials(ctx, azureProvider, opts...)
	if err != nil {
		if errors.Is(err, auth.ErrObjectLevelWorkloadIdentityNotEnabled) {
			return "", fmt.Errorf("%w: spec.serviceAccountName needs the controller started with --feature-gates=ObjectLevelWorkloadIdentity=true", ErrAuth)
		}
		return "", fmt.Errorf("%w: azure workload identity token for %s: %v", ErrAuth, u.Host, src.Proxy.Explain(err))
	}
	if creds.BearerToken == "" {
		return "", fmt.Errorf("%w: azure workload identity gave no token for %s", ErrAuth, u.Host)
	}
	return creds.BearerToken, nil
}
