package controller

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/plumb-dev/plumb/shared/hostlimit"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// includeIndex indexes GitRepositories by the names of the GitRepositories they include.
const includeIndex = ".spec.include.repository.name"

// Options tune the controller.
type Options struct {
	// Concurrent is the number of reconciles that may run at once.
	Concurrent int
	// Hosts bounds the remote operations in flight per host, shared by every kind of the
	// controller; nil bounds nothing.
	Hosts *hostlimit.Limiter
	// HostBusyRetry brings an object whose host was busy back after about this long; 0 leaves
	// it to the kind's wait interval.
	HostBusyRetry time.Duration
	// RequireVerification are the kinds whose objects must have spec.verify
	// (--require-verification, ParseRequireVerification); nil requires nothing.
	RequireVerification map[string]bool
}

// SetupWithManager registers the reconciler: it runs on spec changes and reconcile requests of a
// GitRepository, and when the artifact of a GitRepository it includes changes.
func (r *GitRepositoryReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	r.statusHelper = newStatusHelper(r.Events, r.ControllerName, opts)
	r.verificationRequired = opts.RequireVerification[sourcev1.GitRepositoryKind]
	err := mgr.GetFieldIndexer().IndexField(ctx, &sourcev1.GitRepository{}, includeIndex, func(o client.Object) []string {
		var names []string
		for _, inc := range o.(*sourcev1.GitRepository).Spec.Include {
			names = append(names, inc.Repository.Name)
		}
		return names
	})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.GitRepository{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		Watches(&sourcev1.GitRepository{}, handler.EnqueueRequestsFromMapFunc(r.includers),
			builder.WithPredicates(artifactChanged{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// includers returns the GitRepositories that include obj.
func (r *GitRepositoryReconciler) includers(ctx context.Context, obj client.Object) []reconcile.Request {
	var list sourcev1.GitRepositoryList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{includeIndex: obj.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
	}
	return reqs
}

// artifactChanged passes updates that change the published artifact's digest.
type artifactChanged struct{ predicate.Funcs }

func (artifactChanged) Create(event.CreateEvent) bool   { return false }
func (artifactChanged) Delete(event.DeleteEvent) bool   { return false }
func (artifactChanged) Generic(event.GenericEvent) bool { return false }
func (artifactChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*sourcev1.GitRepository)
	n, ok2 := e.ObjectNew.(*sourcev1.GitRepository)
	if !ok1 || !ok2 || n.Status.Artifact == nil {
		return false
	}
	return o.Status.Artifact == nil || o.Status.Artifact.Digest != n.Status.Artifact.Digest
}
