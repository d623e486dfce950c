package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	ctrlsource "sigs.k8s.io/controller-runtime/pkg/source"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// Indexes of Kustomizations by what they refer to, as Kind/namespace/name.
const (
	sourceIndex     = ".spec.sourceRef"
	dependencyIndex = ".spec.dependsOn"
)

// Options tune the controller.
type Options struct {
	Concurrent int
}

// watches holds the watches started on the kinds Kustomizations refer to, as they are met.
type watches struct {
	ctrl  controller.Controller
	cache cache.Cache
	mu    sync.Mutex
	kinds map[schema.GroupKind]chan struct{} // closed once the kind's watch has synced
}

// SetupWithManager registers the reconciler: it runs on spec changes and reconcile requests,
// when a Kustomization it depends on turns Ready, and, once a reconcile has met the kind, when
// a source it builds from publishes a new artifact or another kind of dependency turns Ready.
func (r *KustomizationReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	// Unpacked artifacts are the big items; builds and clients are small.
	r.trees.max, r.builds.max, r.managers.max = 8, 4096, 256
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &applyv1.Kustomization{}, sourceIndex, func(o client.Object) []string {
		k := o.(*applyv1.Kustomization)
		ns := k.Spec.SourceRef.Namespace
		if ns == "" {
			ns = k.Namespace
		}
		return []string{refKey(k.Spec.SourceRef.Kind, ns, k.Spec.SourceRef.Name)}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &applyv1.Kustomization{}, dependencyIndex, func(o client.Object) []string {
		k := o.(*applyv1.Kustomization)
		var keys []string
		for _, d := range k.Spec.DependsOn {
			gvk, key := dependencyKey(k, d)
			keys = append(keys, refKey(gvk.Kind, key.Namespace, key.Name))
		}
		return keys
	}); err != nil {
		return err
	}
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&applyv1.Kustomization{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		Watches(&applyv1.Kustomization{}, handler.EnqueueRequestsFromMapFunc(r.referrers(applyv1.KustomizationKind)),
			builder.WithPredicates(becameReady{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Build(r)
	if err != nil {
		return err
	}
	r.watches = &watches{ctrl: c, cache: mgr.GetCache(), kinds: map[schema.GroupKind]chan struct{}{}}
	return nil
}

// watch makes sure the kind of a source or dependency is watched before a reconcile reads the
// object, so that any later change of its artifact or its Ready condition triggers the
// Kustomizations that refer to it. The first reconcile to meet a kind starts its watch and waits
// for it to sync, and the others wait with it: a change between the read and the watch cannot
// be missed. Kinds the API server does not serve are not watched (the read reports them), so no
// kind has to be installed for the controller to start: any subset of controllers works.
// Kustomizations are watched from the start.
func (r *KustomizationReconciler) watch(ctx context.Context, gvk schema.GroupVersionKind) {
	w, gk := r.watches, gvk.GroupKind()
	if w == nil || gk == (schema.GroupKind{Group: applyv1.GroupVersion.Group, Kind: applyv1.KustomizationKind}) {
		return
	}
	if _, err := r.Mapper.RESTMapping(gk, gvk.Version); err != nil {
		return
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
	src := ctrlsource.Kind[*unstructured.Unstructured](w.cache, u,
		handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, o *unstructured.Unstructured) []reconcile.Request {
			return r.referrers(gvk.Kind)(ctx, o)
		}), artifactOrReady{})
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
		log.Error(err, "watch of kind not synced yet", "kind", gk)
	}
}

func refKey(kind, ns, name string) string { return fmt.Sprintf("%s/%s/%s", kind, ns, name) }

// referrers maps an object of kind to the Kustomizations that build from it or depend on it.
func (r *KustomizationReconciler) referrers(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		key := refKey(kind, o.GetNamespace(), o.GetName())
		seen := map[types.NamespacedName]bool{}
		var reqs []reconcile.Request
		for _, index := range []string{sourceIndex, dependencyIndex} {
			var list applyv1.KustomizationList
			if err := r.List(ctx, &list, client.MatchingFields{index: key}); err != nil {
				continue
			}
			for i := range list.Items {
				n := types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}
				if !seen[n] {
					seen[n] = true
					reqs = append(reqs, reconcile.Request{NamespacedName: n})
				}
			}
		}
		return reqs
	}
}

// artifactOrReady passes updates of a source or dependency of any kind that change its
// artifact (revision or digest), turn it Ready, or change what it last applied while Ready.
// Creations are left to the Kustomizations' own reconciles and retries.
type artifactOrReady struct {
	predicate.TypedFuncs[*unstructured.Unstructured]
}

func (artifactOrReady) Create(event.TypedCreateEvent[*unstructured.Unstructured]) bool { return false }
func (artifactOrReady) Delete(event.TypedDeleteEvent[*unstructured.Unstructured]) bool { return false }
func (artifactOrReady) Generic(event.TypedGenericEvent[*unstructured.Unstructured]) bool {
	return false
}
func (artifactOrReady) Update(e event.TypedUpdateEvent[*unstructured.Unstructured]) bool {
	o, n := e.ObjectOld, e.ObjectNew
	if o == nil || n == nil {
		return false
	}
	if a := artifactID(n); a != "" && a != artifactID(o) {
		return true
	}
	if !readyAtGeneration(n) {
		return false
	}
	applied := func(u *unstructured.Unstructured) string {
		s, _, _ := unstructured.NestedString(u.Object, "status", "lastAppliedRevision")
		return s
	}
	return !readyAtGeneration(o) || applied(o) != applied(n)
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

// becameReady passes updates of a Kustomization that turn it Ready at its generation.
type becameReady struct{ predicate.Funcs }

func (becameReady) Create(event.CreateEvent) bool   { return false }
func (becameReady) Delete(event.DeleteEvent) bool   { return false }
func (becameReady) Generic(event.GenericEvent) bool { return false }
func (becameReady) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*applyv1.Kustomization)
	n, ok2 := e.ObjectNew.(*applyv1.Kustomization)
	if !ok1 || !ok2 {
		return false
	}
	return isReady(n) && (!isReady(o) || o.Status.LastAppliedRevision != n.Status.LastAppliedRevision)
}

func isReady(k *applyv1.Kustomization) bool {
	for _, c := range k.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True" && k.Status.ObservedGeneration == k.Generation
		}
	}
	return false
}
