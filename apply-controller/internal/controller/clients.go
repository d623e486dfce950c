package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

// manager returns the resource manager that applies for obj: the controller's own identity, an
// impersonated ServiceAccount, and/or a remote cluster's kubeconfig. Managers are kept and
// reused, so their clients, connections and REST mappings are made once.
func (r *KustomizationReconciler) manager(ctx context.Context, obj *applyv1.Kustomization) (*ssa.ResourceManager, error) {
	cfg, mapper, key := r.Config, r.Mapper, "local"
	if kc := obj.Spec.KubeConfig; kc != nil {
		data, err := r.kubeconfig(ctx, obj.Namespace, kc)
		if err != nil {
			return nil, r.failure(obj, "", applyv1.ApplyFailedReason, err)
		}
		if cfg, err = restConfig(data); err != nil {
			return nil, r.stall(obj, applyv1.InvalidSpecReason, fmt.Sprintf("spec.kubeConfig Secret %s: %v", kc.SecretRef.Name, err))
		}
		sum := sha256.Sum256(data)
		key, mapper = "kubeconfig:"+hex.EncodeToString(sum[:]), nil
	}
	sa := obj.Spec.ServiceAccountName
	if sa == "" {
		sa = r.DefaultServiceAccount
	}
	if sa != "" {
		cfg = rest.CopyConfig(cfg)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: fmt.Sprintf("system:serviceaccount:%s:%s", obj.Namespace, sa)}
		key += "/sa:" + obj.Namespace + "/" + sa
	}
	if rm, ok := r.managers.get(key); ok {
		return rm, nil
	}
	rm, err := newManager(cfg, mapper, r.ControllerName)
	if err != nil {
		return nil, r.failure(obj, "", applyv1.ApplyFailedReason, err)
	}
	r.managers.put(key, rm)
	return rm, nil
}

// restConfig reads a kubeconfig, refusing what would make the controller run a program or read
// its own files (exec and auth-provider plugins, file paths): a Secret of a tenant must not
// reach the controller's process or credentials.
func restConfig(data []byte) (*rest.Config, error) {
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, errors.New("not a kubeconfig")
	}
	for name, a := range kc.AuthInfos {
		if a.Exec != nil || a.AuthProvider != nil {
			return nil, fmt.Errorf("user %q uses a credential plugin; only tokens and client certificates inside the kubeconfig are accepted", name)
		}
		if a.TokenFile != "" || a.ClientCertificate != "" || a.ClientKey != "" {
			return nil, fmt.Errorf("user %q names a file; put the token or certificate in the kubeconfig itself", name)
		}
	}
	for name, c := range kc.Clusters {
		if c.CertificateAuthority != "" {
			return nil, fmt.Errorf("cluster %q names a CA file; use certificate-authority-data", name)
		}
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, errors.New("the kubeconfig has no usable context")
	}
	return cfg, nil
}

func newManager(cfg *rest.Config, mapper apimeta.RESTMapper, fieldManager string) (*ssa.ResourceManager, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	if mapper == nil {
		if mapper, err = apiutil.NewDynamicRESTMapper(cfg, httpClient); err != nil {
			return nil, err
		}
	}
	// No cache: applied objects of every kind are read when needed, not watched.
	c, err := client.New(cfg, client.Options{HTTPClient: httpClient, Mapper: mapper})
	if err != nil {
		return nil, err
	}
	poller := polling.NewStatusPoller(c, mapper, polling.Options{})
	return ssa.NewResourceManager(c, poller, ssa.Owner{Field: fieldManager, Group: applyv1.GroupVersion.Group}), nil
}

// kubeconfig reads the spec.kubeConfig Secret's key (default value, then value.yaml).
func (r *KustomizationReconciler) kubeconfig(ctx context.Context, ns string, kc *applyv1.KubeConfigReference) ([]byte, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: kc.SecretRef.Name}, s); err != nil {
		return nil, fmt.Errorf("spec.kubeConfig Secret %s/%s: %w", ns, kc.SecretRef.Name, err)
	}
	keys := []string{"value", "value.yaml"}
	if kc.SecretRef.Key != "" {
		keys = []string{kc.SecretRef.Key}
	}
	for _, k := range keys {
		if len(s.Data[k]) > 0 {
			return s.Data[k], nil
		}
	}
	return nil, fmt.Errorf("spec.kubeConfig Secret %s/%s has no key %q, value or value.yaml", ns, kc.SecretRef.Name, kc.SecretRef.Key)
}

// lru is a small bounded map with least-recently-used eviction.
type lru[V any] struct {
	mu    sync.Mutex
	max   int
	tick  uint64
	items map[string]*lruItem[V]
}

type lruItem[V any] struct {
	v    V
	used uint64
}

func (c *lru[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.tick++
	it.used = c.tick
	return it.v, true
}

func (c *lru[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[string]*lruItem[V]{}
	}
	if c.max <= 0 {
		c.max = 64
	}
	if _, ok := c.items[k]; !ok && len(c.items) >= c.max {
		var oldest string
		var at uint64 = ^uint64(0)
		for key, it := range c.items {
			if it.used < at {
				oldest, at = key, it.used
			}
		}
		delete(c.items, oldest)
	}
	c.tick++
	c.items[k] = &lruItem[V]{v: v, used: c.tick}
}
