package kubeconfig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/auth"
	"github.com/fluxcd/pkg/auth/aws"
	"github.com/fluxcd/pkg/auth/azure"
	"github.com/fluxcd/pkg/auth/gcp"
	"github.com/fluxcd/pkg/auth/generic"
	"github.com/fluxcd/pkg/cache"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Providers of a kubeconfig ConfigMap's provider key (Flux's).
const (
	ProviderGeneric = generic.ProviderName
	ProviderAWS     = aws.ProviderName
	ProviderAzure   = azure.ProviderName
	ProviderGCP     = gcp.ProviderName
)

// ObjectLevelWorkloadIdentity is the feature gate (Flux's) without which a ConfigMap's
// serviceAccountName is refused: the controller would mint tokens of a tenant's ServiceAccount.
const ObjectLevelWorkloadIdentity = auth.FeatureGateObjectLevelWorkloadIdentity

var (
	// ErrInvalidConfigMap: the ConfigMap cannot describe a cluster as it is (no or an unknown
	// provider, no address for generic, an address that is not https). Fix the ConfigMap.
	ErrInvalidConfigMap = errors.New("invalid kubeconfig ConfigMap")
	// ErrObjectLevelIdentityDisabled: the ConfigMap names a serviceAccountName but the controller
	// runs without --feature-gates=ObjectLevelWorkloadIdentity=true.
	ErrObjectLevelIdentityDisabled = errors.New("object-level workload identity is disabled")
)

// Clusters reaches the clusters that kubeconfig ConfigMaps describe (Flux's
// spec.kubeConfig.configMapRef), with credentials obtained by fluxcd/pkg/auth: a token of a
// ServiceAccount of this cluster (generic) or the cloud's cluster credentials from workload
// identity (aws, azure, gcp). Credentials are cached until shortly before they expire, shared by
// every object of the process with the same identity and cluster. Make one per process.
type Clusters struct {
	// DefaultServiceAccount stands for a ConfigMap's serviceAccountName when it names none
	// (--default-kubeconfig-service-account, Flux's flag): the identity is then never the
	// controller's own. It needs the feature gate, as the key does.
	DefaultServiceAccount string

	cache       *cache.TokenCache
	objectLevel bool
}

// NewClusters returns Clusters that keep credentials in c (nil: no cache, a token for every
// reconcile) and let a ConfigMap's serviceAccountName be used when objectLevel is set (the
// caller has enabled fluxcd/pkg/auth's process-wide gate).
func NewClusters(c *cache.TokenCache, objectLevel bool) *Clusters {
	return &Clusters{cache: c, objectLevel: objectLevel}
}

// Object is the object whose spec.kubeConfig.configMapRef is followed.
type Object struct {
	Kind, Namespace, Name string
}

// FromConfigMap reads the ConfigMap name of obj's namespace and returns a REST config for the
// cluster it describes, and a key that is the same for the same ConfigMap contents (for callers
// that keep clients). The config's host and CA are fixed; its bearer token is renewed before it
// expires, so a client made from it can be kept. r reads the ConfigMap and the ServiceAccount,
// kube creates the ServiceAccount token: neither should be a cache. A nil Clusters has no cache
// and no object-level identity. Errors name the ConfigMap and
// never hold a token.
func (c *Clusters) FromConfigMap(ctx context.Context, r client.Reader, kube client.Client, obj Object, name string) (*rest.Config, string, error) {
	if c == nil {
		c = &Clusters{}
	}
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: name}, cm); err != nil {
		return nil, "", fmt.Errorf("spec.kubeConfig ConfigMap %s/%s: %w", obj.Namespace, name, err)
	}
	p, opts, err := c.options(cm, obj, direct{Client: kube, r: r})
	if err != nil {
		return nil, "", fmt.Errorf("spec.kubeConfig ConfigMap %s/%s: %w", obj.Namespace, name, err)
	}
	src := &tokenSource{provider: p, opts: opts, what: describe(cm, obj)}
	conf, err := src.get(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("spec.kubeConfig ConfigMap %s/%s: %w", obj.Namespace, name, err)
	}
	cfg := &rest.Config{Host: conf.Host, TLSClientConfig: rest.TLSClientConfig{CAData: conf.CAData}}
	cfg.Wrap(func(base http.RoundTripper) http.RoundTripper { return &bearer{base: base, src: src} })
	return cfg, key(cm), nil
}

// options checks the ConfigMap and turns it into fluxcd/pkg/auth's provider and options.
func (c *Clusters) options(cm *corev1.ConfigMap, obj Object, kube client.Client) (auth.RESTConfigProvider, []auth.Option, error) {
	d := cm.Data
	p, err := provider(d[meta.KubeConfigKeyProvider])
	if err != nil {
		return nil, nil, err
	}
	address := strings.TrimSpace(d[meta.KubeConfigKeyAddress])
	if address == "" && p.GetName() == ProviderGeneric {
		return nil, nil, fmt.Errorf("%w: provider generic needs the key %s, the API server's https URL", ErrInvalidConfigMap, meta.KubeConfigKeyAddress)
	}
	if address == "" && d[meta.KubeConfigKeyCluster] == "" {
		return nil, nil, fmt.Errorf("%w: provider %s needs the key %s (the cloud's cluster resource name) or %s", ErrInvalidConfigMap, p.GetName(), meta.KubeConfigKeyCluster, meta.KubeConfigKeyAddress)
	}
	if address != "" {
		if _, err := auth.ParseClusterAddress(address); err != nil {
			return nil, nil, fmt.Errorf("%w: key %s: %q is not an https URL of an API server", ErrInvalidConfigMap, meta.KubeConfigKeyAddress, address)
		}
	}
	opts := []auth.Option{auth.WithClient(kube), auth.WithServiceAccountNamespace(obj.Namespace)}
	if c.cache != nil {
		opts = append(opts, auth.WithCache(*c.cache, cache.InvolvedObject{Kind: obj.Kind, Name: obj.Name, Namespace: obj.Namespace, Operation: cache.OperationReconcile}))
	}
	if v := d[meta.KubeConfigKeyCluster]; v != "" {
		opts = append(opts, auth.WithClusterResource(v))
	}
	if address != "" {
		opts = append(opts, auth.WithClusterAddress(address))
	}
	if v := d[meta.KubeConfigKeyCACert]; v != "" {
		opts = append(opts, auth.WithCAData(v))
	}
	sa := d[meta.KubeConfigKeyServiceAccountName]
	if sa == "" {
		sa = c.DefaultServiceAccount
	}
	if sa != "" {
		if !c.objectLevel {
			return nil, nil, fmt.Errorf("%w: serviceAccountName %s needs the controller flag --feature-gates=%s=true",
				ErrObjectLevelIdentityDisabled, sa, ObjectLevelWorkloadIdentity)
		}
		opts = append(opts, auth.WithServiceAccountName(sa))
	}
	if aud := audiences(d[meta.KubeConfigKeyAudiences]); len(aud) > 0 {
		opts = append(opts, auth.WithAudiences(aud...))
	}
	return p, opts, nil
}

// provider returns fluxcd/pkg/auth's provider of a name.
func provider(name string) (auth.RESTConfigProvider, error) {
	switch name {
	case ProviderGeneric:
		return generic.Provider{}, nil
	case ProviderAWS:
		return aws.Provider{}, nil
	case ProviderAzure:
		return azure.Provider{}, nil
	case ProviderGCP:
		return gcp.Provider{}, nil
	case "":
		return nil, fmt.Errorf("%w: no key %s (one of generic, aws, azure, gcp)", ErrInvalidConfigMap, meta.KubeConfigKeyProvider)
	}
	return nil, fmt.Errorf("%w: provider %q is not one of generic, aws, azure, gcp", ErrInvalidConfigMap, name)
}

// audiences splits the audiences key: one audience a line, as Flux reads it.
func audiences(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, "\n") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// describe names the identity and cluster of the ConfigMap, for errors.
func describe(cm *corev1.ConfigMap, obj Object) string {
	d := cm.Data
	who := "the controller's identity"
	if sa := d[meta.KubeConfigKeyServiceAccountName]; sa != "" {
		who = fmt.Sprintf("ServiceAccount %s/%s", obj.Namespace, sa)
	}
	where := d[meta.KubeConfigKeyAddress]
	if c := d[meta.KubeConfigKeyCluster]; c != "" {
		where = c
	}
	return fmt.Sprintf("provider %s: credentials for %s as %s", d[meta.KubeConfigKeyProvider], where, who)
}

// key is a digest of what the ConfigMap says (and where it is), for callers that keep clients.
func key(cm *corev1.ConfigMap) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s\n", cm.Namespace, cm.Name)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range cm.Data {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(h, "%q=%q\n", k, cm.Data[k])
	}
	return "configmap:" + hex.EncodeToString(h.Sum(nil))
}

// tokenSource keeps the last credentials obtained and renews them at 80 % of their lifetime
// (as the token cache does): a request then costs no call to the API server or the cloud.
type tokenSource struct {
	provider auth.RESTConfigProvider
	opts     []auth.Option
	what     string

	mu      sync.Mutex
	cur     *auth.RESTConfig
	renewAt time.Time
}

func (s *tokenSource) get(ctx context.Context) (*auth.RESTConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.cur != nil && now.Before(s.renewAt) {
		return s.cur, nil
	}
	conf, err := auth.GetRESTConfig(ctx, s.provider, s.opts...)
	if err != nil {
		if errors.Is(err, auth.ErrObjectLevelWorkloadIdentityNotEnabled) {
			return nil, fmt.Errorf("%s: %w: the controller flag --feature-gates=%s=true is needed", s.what, ErrObjectLevelIdentityDisabled, ObjectLevelWorkloadIdentity)
		}
		return nil, fmt.Errorf("%s: %s", s.what, oneLine(err))
	}
	s.cur = conf
	s.renewAt = now.Add(time.Duration(0.8 * float64(conf.ExpiresAt.Sub(now))))
	return conf, nil
}

// bearer sets the current token on every request to the remote cluster: long waits (health
// checks, Helm) outlive a token.
type bearer struct {
	base http.RoundTripper
	src  *tokenSource
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	conf, err := b.src.get(req.Context())
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+conf.BearerToken)
	return b.base.RoundTrip(req)
}

// direct is a client whose reads go to r (the API server), not to a cache: the ServiceAccounts
// that fluxcd/pkg/auth reads are not worth watching.
type direct struct {
	client.Client
	r client.Reader
}

func (d direct) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return d.r.Get(ctx, key, obj, opts...)
}

// oneLine keeps an error on one line; fluxcd/pkg/auth's errors never quote a token.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
