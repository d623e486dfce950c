package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/fluxcd/pkg/auth"
	"github.com/fluxcd/pkg/auth/aws"
	"github.com/fluxcd/pkg/auth/azure"
	"github.com/fluxcd/pkg/auth/gcp"
	"github.com/fluxcd/pkg/cache"
	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/proxy"
)

// Providers of spec.provider: generic reads credentials from Secrets (or nothing), the others
// obtain short-lived registry credentials from the cloud's workload identity.
const (
	ProviderGeneric = "generic"
	ProviderAWS     = "aws"
	ProviderAzure   = "azure"
	ProviderGCP     = "gcp"
)

// ObjectLevelWorkloadIdentity is the name of the feature gate (Flux's) that lets an object's
// serviceAccountName be the cloud identity, by a token exchange for that ServiceAccount.
const ObjectLevelWorkloadIdentity = auth.FeatureGateObjectLevelWorkloadIdentity

// DefaultTokenCacheSize bounds the cloud token cache of a process: one entry for each identity
// and registry (and one for each identity's cloud access token).
const DefaultTokenCacheSize = 256

var (
	// ErrProviderMismatch: the registry is not one of the provider's (provider aws and a host
	// that is not ECR). Retrying cannot help: fix the URL or the provider.
	ErrProviderMismatch = errors.New("registry does not belong to the provider")
	// ErrObjectLevelIdentityDisabled: serviceAccountName names the identity of a cloud provider
	// but the controller runs without the ObjectLevelWorkloadIdentity feature gate.
	ErrObjectLevelIdentityDisabled = errors.New("object-level workload identity is disabled")
)

// Cloud obtains registry credentials from a cloud's workload identity and caches them until
// shortly before they expire (at 80 % of their lifetime), shared by every object of the process
// with the same identity and registry.
type Cloud struct {
	cache       *cache.TokenCache
	objectLevel bool
}

// CloudOptions configure a Cloud.
type CloudOptions struct {
	// CacheSize bounds the token cache (DefaultTokenCacheSize when 0).
	CacheSize int
	// ObjectLevel lets an object's serviceAccountName be its cloud identity.
	ObjectLevel bool
}

// NewCloud returns a Cloud with a token cache of its own: make one per process.
func NewCloud(o CloudOptions) (*Cloud, error) {
	size := o.CacheSize
	if size <= 0 {
		size = DefaultTokenCacheSize
	}
	c, err := cache.NewTokenCache(size)
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	if o.ObjectLevel {
		// fluxcd/pkg/auth checks its own process-wide gate before a token exchange; Login
		// checks this Cloud's first, so a Cloud without it never gets that far.
		enableObjectLevel()
	}
	return &Cloud{cache: c, objectLevel: o.ObjectLevel}, nil
}

var (
	enableObjectLevel = sync.OnceFunc(auth.EnableObjectLevelWorkloadIdentity)
	defaultCloud      = sync.OnceValue(func() *Cloud {
		c, err := NewCloud(CloudOptions{})
		if err != nil {
			panic(err) // only a non-positive size fails
		}
		return c
	})
)

// ObjectLevel reports whether serviceAccountName may name the cloud identity.
func (c *Cloud) ObjectLevel() bool { return c.objectLevel }

// ValidProvider reports whether p is a provider this package knows ("" is generic).
func ValidProvider(p string) bool {
	switch p {
	case "", ProviderGeneric, ProviderAWS, ProviderAzure, ProviderGCP:
		return true
	}
	return false
}

// IsCloud reports whether p obtains credentials from a cloud identity.
func IsCloud(p string) bool { return p != "" && p != ProviderGeneric }

// Identity is whose cloud credentials an object uses.
type Identity struct {
	// Provider is aws, azure or gcp.
	Provider string
	// Namespace and ServiceAccount: with ServiceAccount set (and object-level identity on),
	// the identity is the one that ServiceAccount's annotations name; otherwise the
	// controller's own.
	Namespace, ServiceAccount string
	// Kind and Name of the object, for the cache's events.
	Kind, Name string
	// Proxy, when set, carries the calls to the cloud's token services.
	Proxy *proxy.Proxy
}

// Login sets creds.Cloud to short-lived credentials for the registry of repo, obtained with the
// identity. A nil Cloud is a process-wide one without object-level identity. Errors name the
// provider and the registry and wrap ErrAuth (the exchange failed), ErrProviderMismatch or
// ErrObjectLevelIdentityDisabled; they never hold a token.
func (c *Cloud) Login(ctx context.Context, kube client.Client, repo name.Repository, id Identity, creds *Credentials) error {
	if c == nil {
		c = defaultCloud()
	}
	p, err := checkProvider(id.Provider, repo)
	if err != nil {
		return err
	}
	registry := repo.RegistryStr()
	opts := []auth.Option{
		auth.WithCache(*c.cache, cache.InvolvedObject{Kind: id.Kind, Name: id.Name, Namespace: id.Namespace, Operation: cache.OperationReconcile}),
	}
	if id.ServiceAccount != "" {
		if !c.objectLevel {
			return fmt.Errorf("%w: provider %s: serviceAccountName %s names the cloud identity, which needs the controller flag --feature-gates=%s=true",
				ErrObjectLevelIdentityDisabled, id.Provider, id.ServiceAccount, ObjectLevelWorkloadIdentity)
		}
		opts = append(opts, auth.WithClient(kube), auth.WithServiceAccountNamespace(id.Namespace), auth.WithServiceAccountName(id.ServiceAccount))
	}
	if id.Proxy != nil {
		opts = append(opts, auth.WithProxyURL(*id.Proxy.FullURL()))
	}
	got, err := auth.GetArtifactRegistryCredentials(ctx, p, repo.String(), opts...)
	if err != nil {
		return fmt.Errorf("%w: provider %s: getting credentials for %s%s: %s", ErrAuth, id.Provider, registry, identityOf(id), scrub(err))
	}
	creds.Cloud = got.Authenticator
	return nil
}

// CheckProvider says whether the repository's registry is one of the cloud provider's, without
// a request: ErrProviderMismatch when it is not (provider aws and a host that is not ECR).
func CheckProvider(providerName string, repo name.Repository) error {
	_, err := checkProvider(providerName, repo)
	return err
}

func checkProvider(providerName string, repo name.Repository) (auth.ArtifactRegistryCredentialsProvider, error) {
	p, err := provider(providerName)
	if err != nil {
		return nil, err
	}
	if _, err := p.ParseArtifactRepository(repo.String()); err != nil {
		return nil, fmt.Errorf("%w: provider %s: %s is not %s", ErrProviderMismatch, providerName, repo.RegistryStr(), registryKind(providerName))
	}
	return p, nil
}

// provider returns the fluxcd/pkg/auth provider of a name.
func provider(p string) (auth.ArtifactRegistryCredentialsProvider, error) {
	switch p {
	case ProviderAWS:
		return aws.Provider{Implementation: awsEndpoints{}}, nil
	case ProviderAzure:
		return azure.Provider{}, nil
	case ProviderGCP:
		return gcp.Provider{}, nil
	}
	return nil, fmt.Errorf("%w: provider %q has no cloud identity (one of aws, azure, gcp)", ErrProviderMismatch, p)
}

func registryKind(p string) string {
	switch p {
	case ProviderAWS:
		return "an ECR registry (<account>.dkr.ecr.<region>.amazonaws.com or public.ecr.aws)"
	case ProviderAzure:
		return "an ACR registry (<name>.azurecr.io)"
	case ProviderGCP:
		return "a GCP registry (gcr.io or <location>-docker.pkg.dev)"
	}
	return "a registry of the provider"
}

func identityOf(id Identity) string {
	if id.ServiceAccount == "" {
		return " with the controller's identity"
	}
	return fmt.Sprintf(" as ServiceAccount %s/%s", id.Namespace, id.ServiceAccount)
}

// scrub keeps an SDK error on one line; the SDKs quote neither the tokens they send nor those
// they receive, so what is left is the cloud's own explanation.
func scrub(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
