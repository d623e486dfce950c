package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"helm.sh/helm/v3/pkg/release"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
)

// cluster is one identity's view of a cluster: the REST config, and discovery, a REST mapper
// and a client made once and shared by every release of that identity. Helm reads it through
// plumbrelease.Cluster; health checks, drift and CRDs use its client.
type cluster struct {
	config *rest.Config
	once   sync.Once
	disc   discovery.CachedDiscoveryInterface
	mapper apimeta.RESTMapper
	client client.Client
	err    error
}

var _ plumbrelease.Cluster = (*cluster)(nil)

func newCluster(cfg *rest.Config) *cluster { return &cluster{config: cfg} }

func (c *cluster) init() {
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

// RESTConfig is the identity's config.
func (c *cluster) RESTConfig() *rest.Config { return c.config }

// Discovery is this identity's cached discovery client.
func (c *cluster) Discovery() (discovery.CachedDiscoveryInterface, error) {
	c.init()
	return c.disc, c.err
}

// Mapper is this identity's REST mapper.
func (c *cluster) Mapper() (apimeta.RESTMapper, error) {
	c.init()
	return c.mapper, c.err
}

// Client reads and writes objects as this identity.
func (c *cluster) Client() (client.Client, error) {
	c.init()
	return c.client, c.err
}

// errInvalidKubeConfig marks a kubeconfig Secret or ConfigMap that cannot be used as it is (or
// a ConfigMap's serviceAccountName without the controller's feature gate).
var errInvalidKubeConfig = errors.New("invalid kubeconfig")

// cluster returns the view of the cluster of the identity the release acts as (shared by every
// release of that identity): the controller's own, or a remote cluster's from spec.kubeConfig,
// either impersonating a ServiceAccount.
func (r *HelmReleaseReconciler) cluster(ctx context.Context, obj *helmv1.HelmRelease) (*cluster, error) {
	key, cfg := "controller", rest.CopyConfig(r.Config)
	if kc := obj.Spec.KubeConfig; kc != nil && kc.ConfigMapRef != nil {
		var err error
		id := kubeconfig.Object{Kind: helmv1.HelmReleaseKind, Namespace: obj.Namespace, Name: obj.Name}
		if cfg, key, err = r.Clusters.FromConfigMap(ctx, r.APIReader, r.Client, id, kc.ConfigMapRef.Name); err != nil {
			if errors.Is(err, kubeconfig.ErrInvalidConfigMap) || errors.Is(err, kubeconfig.ErrObjectLevelIdentityDisabled) {
				return nil, fmt.Errorf("%w: %v", errInvalidKubeConfig, err)
			}
			return nil, err
		}
	}
	if kc := obj.Spec.KubeConfig; kc != nil && kc.SecretRef != nil {
		data, err := kubeconfig.FromSecret(ctx, r.APIReader, obj.Namespace, kc.SecretRef.Name, kc.SecretRef.Key)
		if err != nil {
			return nil, err
		}
		if cfg, err = kubeconfig.RESTConfig(data); err != nil {
			return nil, fmt.Errorf("%w: spec.kubeConfig Secret %s: %v", errInvalidKubeConfig, kc.SecretRef.Name, err)
		}
		sum := sha256.Sum256(data)
		key = "kubeconfig:" + hex.EncodeToString(sum[:])
	}
	sa := obj.Spec.ServiceAccountName
	if sa == "" && obj.Spec.KubeConfig == nil {
		// The default identity is this cluster's; a remote cluster is reached as its kubeconfig
		// says unless a ServiceAccount is named.
		sa = r.DefaultServiceAccount
	}
	if sa != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: fmt.Sprintf("system:serviceaccount:%s:%s", obj.Namespace, sa)}
		key += "/sa:" + obj.Namespace + "/" + sa
	}
	if v, ok := r.clusters.Load(key); ok {
		return v.(*cluster), nil
	}
	v, _ := r.clusters.LoadOrStore(key, newCluster(cfg))
	return v.(*cluster), nil
}

// helm makes the Helm actions of the release: the identity to act as, the target namespace,
// release storage in Secrets of the storage namespace.
func (r *HelmReleaseReconciler) helm(ctx context.Context, obj *helmv1.HelmRelease) (*plumbrelease.Helm, error) {
	c, err := r.cluster(ctx, obj)
	if err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		log.FromContext(ctx).V(1).Info(fmt.Sprintf(format, args...))
	}
	t := plumbrelease.Target{
		Name:             obj.GetReleaseName(),
		Namespace:        obj.GetTargetNamespace(),
		StorageNamespace: obj.GetStorageNamespace(),
		MaxHistory:       obj.GetMaxHistory(),
	}
	if obj.Spec.KubeConfig == nil {
		// The watch is of this cluster's Secrets: another cluster's storage is always listed.
		t.Watched = r.storage.watched(t.StorageNamespace, t.Name)
	}
	return plumbrelease.NewHelm(c, t, logf)
}

// releaseObjects returns a client of the release's identity and the objects of its manifest.
func (r *HelmReleaseReconciler) releaseObjects(ctx context.Context, obj *helmv1.HelmRelease, rls *release.Release) (client.Client, []*unstructured.Unstructured, error) {
	cl, err := r.cluster(ctx, obj)
	if err != nil {
		return nil, nil, err
	}
	c, err := cl.Client()
	if err != nil {
		return nil, nil, err
	}
	mapper, err := cl.Mapper()
	if err != nil {
		return nil, nil, err
	}
	objs, err := plumbrelease.Objects(rls.Manifest, rls.Namespace, mapper)
	return c, objs, err
}
