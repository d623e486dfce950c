package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
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
	r.watches = refwatch.New(c, mgr.GetCache(), mgr.GetRESTMapper(), r.referrers,
		schema.GroupKind{Group: applyv1.GroupVersion.Group, Kind: applyv1.KustomizationKind})
	return nil
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
