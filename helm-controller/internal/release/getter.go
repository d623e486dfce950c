package release

import (
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Cluster is one identity's view of a cluster for Helm: the REST config, and discovery and a
// REST mapper made once and shared by every release of that identity.
type Cluster struct {
	config *rest.Config
	once   sync.Once
	disc   discovery.CachedDiscoveryInterface
	mapper meta.RESTMapper
	client client.Client
	err    error
}

// NewCluster wraps a REST config.
func NewCluster(cfg *rest.Config) *Cluster { return &Cluster{config: cfg} }

func (c *Cluster) init() {
	c.once.Do(func() {
		dc, err := discovery.NewDiscoveryClientForConfig(c.config)
		if err != nil {
			c.err = err
			return
		}
		c.disc = memory.NewMemCacheClient(dc)
		httpClient, err := rest.HTTPClientFor(c.config)
		if err != nil {
			c.err = err
			return
		}
		// Refreshed when a kind is missing: CRDs installed later (by a chart, or anyone) are
		// found without a restart.
		if c.mapper, err = apiutil.NewDynamicRESTMapper(c.config, httpClient); err != nil {
			c.err = err
			return
		}
		c.client, c.err = client.New(c.config, client.Options{HTTPClient: httpClient, Mapper: c.mapper})
	})
}

// Client reads objects as this identity, for health checks.
func (c *Cluster) Client() (client.Client, error) {
	c.init()
	return c.client, c.err
}

// Mapper is this identity's REST mapper.
func (c *Cluster) Mapper() (meta.RESTMapper, error) {
	c.init()
	return c.mapper, c.err
}

// Getter returns Helm's view of the cluster for one namespace.
func (c *Cluster) Getter(namespace string) genericclioptions.RESTClientGetter {
	return &getter{cluster: c, namespace: namespace}
}

// getter implements genericclioptions.RESTClientGetter over a Cluster.
type getter struct {
	cluster   *Cluster
	namespace string
}

func (g *getter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cluster.config), nil }

func (g *getter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	g.cluster.init()
	return g.cluster.disc, g.cluster.err
}

func (g *getter) ToRESTMapper() (meta.RESTMapper, error) {
	g.cluster.init()
	return g.cluster.mapper, g.cluster.err
}

func (g *getter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{
		Context: clientcmdapi.Context{Namespace: g.namespace},
	})
}
