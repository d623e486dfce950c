package controller

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/objcache"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/refwatch"
)

// Indexes of HelmReleases by what they refer to, as Kind/namespace/name.
const (
	chartRefIndex   = ".spec.chartRef"
	dependencyIndex = ".spec.dependsOn"
)

// SetupWithManager registers the reconciler: it runs on spec changes, reconcile and reset
// requests, and (once a reconcile has met the kind, see shared/refwatch) when the chart source
// publishes a new artifact or a dependency turns Ready.
func (r *HelmReleaseReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if r.RequeueDependency == 0 {
		r.RequeueDependency = 5 * time.Second
	}
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &helmv1.HelmRelease{}, chartRefIndex, func(o client.Object) []string {
		hr := o.(*helmv1.HelmRelease)
		if hr.Spec.Chart == nil && hr.Spec.ChartRef == nil {
			return nil
		}
		gvk, key, _ := chartKey(hr)
		return []string{refwatch.Key(gvk.Kind, key.Namespace, key.Name)}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &helmv1.HelmRelease{}, dependencyIndex, func(o client.Object) []string {
		deps, _ := dependencies(o.(*helmv1.HelmRelease))
		return refwatch.IndexKeys(deps)
	}); err != nil {
		return err
	}
	referrers := refwatch.Referrers(r.Client, func() client.ObjectList { return &helmv1.HelmReleaseList{} }, chartRefIndex, dependencyIndex)
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&helmv1.HelmRelease{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}, plumbreconcile.Requested{Annotation: helmv1.ResetAtAnnotation}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Build(r)
	if err != nil {
		return err
	}
	r.watches = refwatch.New(c, mgr.GetCache(), mgr.GetRESTMapper(), referrers)
	if r.storage, err = newStorageWatch(mgr.GetConfig()); err != nil {
		return err
	}
	if err := mgr.Add(r.storage); err != nil {
		return err
	}
	if r.objects, err = objcache.New(mgr.GetConfig(), mgr.GetScheme(), mgr.GetRESTMapper(), objcache.Options{Selector: helmManagedSelector}); err != nil {
		return err
	}
	return mgr.Add(r.objects)
}
