package controller

import (
	"context"

	"github.com/fluxcd/pkg/runtime/conditions"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	crsource "sigs.k8s.io/controller-runtime/pkg/source"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/objcache"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/refwatch"
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

// SetupWithManager registers the reconciler: it runs on spec changes and reconcile requests,
// when a Kustomization it depends on turns Ready, and, once a reconcile has met the kind (see
// shared/refwatch), when a source it builds from publishes a new artifact or another kind of
// dependency turns Ready.
func (r *KustomizationReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	// Unpacked artifacts are the big items; builds and clients are small.
	r.trees.max, r.builds.max, r.managers.max = 8, 4096, 256
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &applyv1.Kustomization{}, sourceIndex, func(o client.Object) []string {
		gvk, key, _ := sourceKey(o.(*applyv1.Kustomization))
		return []string{refwatch.Key(gvk.Kind, key.Namespace, key.Name)}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &applyv1.Kustomization{}, dependencyIndex, func(o client.Object) []string {
		deps, _ := dependencies(o.(*applyv1.Kustomization))
		return refwatch.IndexKeys(deps)
	}); err != nil {
		return err
	}
	r.wakeups, r.wakeCtx = make(chan event.GenericEvent), ctx
	referrers := refwatch.Referrers(r.Client, func() client.ObjectList { return &applyv1.KustomizationList{} }, sourceIndex, dependencyIndex)
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&applyv1.Kustomization{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		Watches(&applyv1.Kustomization{}, handler.EnqueueRequestsFromMapFunc(referrers(applyv1.KustomizationKind)),
			builder.WithPredicates(becameReady{})).
		// Runs parked in their health wait (kustomization_park.go), and Kustomizations whose
		// objects changed soon after a request (watchAfterRequest), are woken through this.
		WatchesRawSource(crsource.Channel(r.wakeups, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Build(r)
	if err != nil {
		return err
	}
	r.watches = refwatch.New(c, mgr.GetCache(), mgr.GetRESTMapper(), referrers,
		schema.GroupKind{Group: applyv1.GroupVersion.Group, Kind: applyv1.KustomizationKind})
	r.sources = mgr.GetCache()
	// The objects this controller applied carry its owner label: only they are cached.
	if r.owned, err = objcache.New(mgr.GetConfig(), mgr.GetScheme(), mgr.GetRESTMapper(),
		objcache.Options{Selector: applyv1.GroupVersion.Group + "/name", Manager: r.ControllerName}); err != nil {
		return err
	}
	return mgr.Add(r.owned)
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
	return conditions.IsReady(k) && k.Status.ObservedGeneration == k.Generation
}
