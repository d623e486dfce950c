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
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
	"github.com/plumb-dev/plumb/shared/status"
)

// manager returns the resource manager that applies for obj: the controller's own identity, an
// impersonated ServiceAccount, and/or a remote cluster's kubeconfig. Managers are kept and
// reused, so their clients, connections and REST mappings are made once. local reports whether
// it applies to the controller's own cluster, whose owned objects the metadata cache sees.
func (r *KustomizationReconciler) manager(ctx context.Context, obj *applyv1.Kustomization) (rm *ssa.ResourceManager, local bool, err error) {
	cfg, mapper, key := r.Config, r.Mapper, "local"
	local = obj.Spec.KubeConfig == nil
	if kc := obj.Spec.KubeConfig; kc != nil && kc.ConfigMapRef != nil {
		id := kubeconfig.Object{Kind: applyv1.KustomizationKind, Namespace: obj.Namespace, Name: obj.Name}
		if cfg, key, err = r.Clusters.FromConfigMap(ctx, r.APIReader, r.Client, id, kc.ConfigMapRef.Name); err != nil {
			// Not stalled: ConfigMaps are not watched, and a fixed ConfigMap (or a granted
			// identity) is seen at the next retry.
			return nil, false, status.Fail(r.Events, obj, "", kubeConfigReason(err), err)
		}
		mapper = nil
	}
	if kc := obj.Spec.KubeConfig; kc != nil && kc.SecretRef != nil {
		data, err := kubeconfig.FromSecret(ctx, r.APIReader, obj.Namespace, kc.SecretRef.Name, kc.SecretRef.Key)
		if err != nil {
			return nil, false, status.Fail(r.Events, obj, "", applyv1.ApplyFailedReason, err)
		}
		if cfg, err = kubeconfig.RESTConfig(data); err != nil {
			// Not stalled: Secrets are not watched, and a fixed Secret is seen at the next retry.
			return nil, false, status.Fail(r.Events, obj, "", applyv1.InvalidSpecReason, fmt.Errorf("spec.kubeConfig Secret %s: %w", kc.SecretRef.Name, err))
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
		return rm, local, nil
	}
	rm, err = newManager(cfg, mapper, r.ControllerName)
	if err != nil {
		return nil, false, status.Fail(r.Events, obj, "", applyv1.ApplyFailedReason, err)
	}
	rm.SetConcurrency(max(r.ConcurrentSSA, 1))
	r.managers.put(key, rm)
	return rm, local, nil
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
	// No cache: applied objects are read when needed; what the reads and writes return is
	// observed (kustomization_drift.go), and a metadata-only cache tells what changed since.
	c, err := client.NewWithWatch(cfg, client.Options{HTTPClient: httpClient, Mapper: mapper})
	if err != nil {
		return nil, err
	}
	c = observing(c)
	poller := polling.NewStatusPoller(c, mapper, polling.Options{})
	return ssa.NewResourceManager(c, poller, ssa.Owner{Field: fieldManager, Group: applyv1.GroupVersion.Group}), nil
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

// kubeConfigReason is the reason of a kubeconfig ConfigMap that could not be used: InvalidSpec
// when the ConfigMap (or the controller's flags) must change, ApplyFailed when the ConfigMap is
// missing or the credentials could not be obtained.
func kubeConfigReason(err error) string {
	if errors.Is(err, kubeconfig.ErrInvalidConfigMap) || errors.Is(err, kubeconfig.ErrObjectLevelIdentityDisabled) {
		return applyv1.InvalidSpecReason
	}
	return applyv1.ApplyFailedReason
}
