// Package refwatch lets a consumer controller react to the objects its objects refer to (a
// source's artifact, a dependency's Ready condition) for any kind, without knowing the kinds in
// advance: the first reconcile that reads an object of a kind starts a watch on that kind, and
// waits for it to sync before the read, so that no change falls between the read and the watch.
// Kinds the API server does not serve are not watched, so a controller starts with any subset
// of Plumb installed and picks up a kind installed later. Only kinds that opt in are read and
// watched (see Allowed): Plumb's own and CRDs labeled as reference targets, never Secrets.
package refwatch

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Watcher starts watches on kinds as they are met.
type Watcher struct {
	ctrl   controller.Controller
	cache  cache.Cache
	mapper apimeta.RESTMapper
	// referrers maps a changed object of a kind to the requests of the objects that refer to it.
	referrers func(kind string) handler.MapFunc
	skip      map[schema.GroupKind]bool

	mu    sync.Mutex
	kinds map[schema.GroupKind]chan struct{} // closed once the kind's watch has synced
}

// New returns a Watcher for a controller; kinds in skip are watched some other way.
func New(c controller.Controller, ca cache.Cache, mapper apimeta.RESTMapper, referrers func(kind string) handler.MapFunc, skip ...schema.GroupKind) *Watcher {
	w := &Watcher{ctrl: c, cache: ca, mapper: mapper, referrers: referrers, skip: map[schema.GroupKind]bool{}, kinds: map[schema.GroupKind]chan struct{}{}}
	for _, gk := range skip {
		w.skip[gk] = true
	}
	return w
}

// Ensure makes sure gvk is watched before the caller reads an object of it. The first caller
// for a kind starts the watch and waits for it to sync (at most 30 s); the others wait with it.
// Call it from Reconcile: before the controller has started, a watch cannot sync.
func (w *Watcher) Ensure(ctx context.Context, gvk schema.GroupVersionKind) {
	if w == nil {
		return
	}
	gk := gvk.GroupKind()
	if w.skip[gk] {
		return
	}
	if _, err := w.mapper.RESTMapping(gk, gvk.Version); err != nil {
		return
	}
	if w.Allowed(ctx, gvk) != nil {
		return // never a watch, and so never a cache, of a kind that did not opt in
	}
	w.mu.Lock()
	synced, found := w.kinds[gk]
	if !found {
		synced = make(chan struct{})
		w.kinds[gk] = synced
	}
	w.mu.Unlock()
	if found {
		select {
		case <-synced:
		case <-ctx.Done():
		}
		return
	}
	defer close(synced)
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	src := source.Kind[*unstructured.Unstructured](w.cache, u,
		handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, o *unstructured.Unstructured) []reconcile.Request {
			return w.referrers(gvk.Kind)(ctx, o)
		}), ArtifactOrReady{})
	log := ctrl.LoggerFrom(ctx)
	if err := w.ctrl.Watch(src); err != nil {
		log.Error(err, "cannot watch kind; its changes are seen at the retry interval", "kind", gk)
		w.mu.Lock()
		delete(w.kinds, gk) // the next reconcile that meets the kind tries again
		w.mu.Unlock()
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := src.WaitForSync(sctx); err != nil {
		// controller-runtime stops a watch that did not sync: the next reconcile that meets
		// the kind starts it again.
		log.Error(err, "watch of kind did not sync; its changes are seen at the retry interval until it does", "kind", gk)
		w.mu.Lock()
		delete(w.kinds, gk)
		w.mu.Unlock()
	}
}

// Get ensures gvk is watched, then reads the object at key into a new unstructured object. It
// returns nil and no error when the object, or its kind, does not exist, and also when the
// controller may not read it: the referring object's message must not tell a tenant which of
// the two it is (the controller's log does). A kind that did not opt in (see Allowed) is an
// error wrapping ErrKindRefused, and nothing is read.
func (w *Watcher) Get(ctx context.Context, c client.Reader, gvk schema.GroupVersionKind, key types.NamespacedName) (*unstructured.Unstructured, error) {
	if err := w.Allowed(ctx, gvk); err != nil {
		return nil, err
	}
	w.Ensure(ctx, gvk)
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := c.Get(ctx, key, u); err != nil {
		if apierrors.IsForbidden(err) {
			ctrl.LoggerFrom(ctx).Error(err, "cannot read a referred object; it is reported as not found", "kind", gvk.GroupKind(), "object", key)
			return nil, nil
		}
		if apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, err
	}
	return u, nil
}

// Key is the value a field index records for a reference to the object kind/namespace/name.
func Key(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// Referrers returns, for a referred kind, a MapFunc that lists the objects whose field indexes
// (valued with Key) name the changed object, and asks for each of them once.
func Referrers(c client.Reader, newList func() client.ObjectList, indexes ...string) func(kind string) handler.MapFunc {
	return func(kind string) handler.MapFunc {
		return func(ctx context.Context, o client.Object) []reconcile.Request {
			key := Key(kind, o.GetNamespace(), o.GetName())
			seen := map[types.NamespacedName]bool{}
			var reqs []reconcile.Request
			for _, index := range indexes {
				list := newList()
				if err := c.List(ctx, list, client.MatchingFields{index: key}); err != nil {
					ctrl.LoggerFrom(ctx).Error(err, "listing referrers", "index", index, "key", key)
					continue
				}
				_ = apimeta.EachListItem(list, func(item runtime.Object) error {
					m, err := apimeta.Accessor(item)
					if err != nil {
						return nil
					}
					n := types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}
					if !seen[n] {
						seen[n] = true
						reqs = append(reqs, reconcile.Request{NamespacedName: n})
					}
					return nil
				})
			}
			return reqs
		}
	}
}

// ArtifactOrReady passes updates of an object of any kind that change its artifact (revision or
// digest), turn it Ready at its generation, or change what it last applied while Ready.
// Creations are left to the referring objects' own reconciles and retries.
type ArtifactOrReady struct {
	predicate.TypedFuncs[*unstructured.Unstructured]
}

// Create passes nothing.
func (ArtifactOrReady) Create(event.TypedCreateEvent[*unstructured.Unstructured]) bool { return false }

// Delete passes nothing.
func (ArtifactOrReady) Delete(event.TypedDeleteEvent[*unstructured.Unstructured]) bool { return false }

// Generic passes nothing.
func (ArtifactOrReady) Generic(event.TypedGenericEvent[*unstructured.Unstructured]) bool {
	return false
}

// Update passes a new artifact, a turn to Ready, or a new applied revision while Ready.
func (ArtifactOrReady) Update(e event.TypedUpdateEvent[*unstructured.Unstructured]) bool {
	o, n := e.ObjectOld, e.ObjectNew
	if o == nil || n == nil {
		return false
	}
	if a := artifactID(n); a != "" && a != artifactID(o) {
		return true
	}
	if !ReadyAtGeneration(n) {
		return false
	}
	return !ReadyAtGeneration(o) || lastApplied(o) != lastApplied(n)
}

func lastApplied(u *unstructured.Unstructured) string {
	if s, _, _ := unstructured.NestedString(u.Object, "status", "lastAppliedRevision"); s != "" {
		return s
	}
	// Kinds that keep their runs newest first in status.history (a HelmRelease): the newest.
	if h, _, _ := unstructured.NestedSlice(u.Object, "status", "history"); len(h) > 0 {
		if m, ok := h[0].(map[string]any); ok {
			return fmt.Sprint(m["version"], m["status"])
		}
	}
	return ""
}

// artifactID is an object's artifact revision and digest, or "" when it has none.
func artifactID(u *unstructured.Unstructured) string {
	rev, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "revision")
	digest, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "digest")
	if rev == "" && digest == "" {
		return ""
	}
	return rev + "@" + digest
}

// ReadyAtGeneration reports whether an object's Ready condition is True for its current
// generation (objects without observedGeneration count as current).
func ReadyAtGeneration(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	ready := false
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" && m["status"] == "True" {
			ready = true
		}
	}
	if !ready {
		return false
	}
	og, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	return !found || og == u.GetGeneration()
}
