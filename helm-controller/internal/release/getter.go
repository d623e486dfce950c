package release

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Cluster is what Helm needs of one identity's view of a cluster. The caller makes discovery
// and the REST mapper once and shares them between every release of that identity (the
// controller's mapper is refreshed when a kind is missing, so CRDs installed later are found).
type Cluster interface {
	// RESTConfig is the identity's config; Helm is given a copy.
	RESTConfig() *rest.Config
	Discovery() (discovery.CachedDiscoveryInterface, error)
	Mapper() (meta.RESTMapper, error)
}

// Getter returns Helm's view of the cluster for one namespace.
func Getter(c Cluster, namespace string) genericclioptions.RESTClientGetter {
	return &getter{cluster: c, namespace: namespace}
}

// getter implements genericclioptions.RESTClientGetter over a Cluster.
type getter struct {
	cluster   Cluster
	namespace string
}

func (g *getter) ToRESTConfig() (*rest.Config, error) {
	return rest.CopyConfig(g.cluster.RESTConfig()), nil
}

func (g *getter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return g.cluster.Discovery()
}

func (g *getter) ToRESTMapper() (meta.RESTMapper, error) { return g.cluster.Mapper() }

func (g *getter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{
		Context: clientcmdapi.Context{Namespace: g.namespace},
	})
}
