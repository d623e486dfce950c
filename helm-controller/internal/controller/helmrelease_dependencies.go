package controller

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/refwatch"
)

// helmReleaseGVK is what a dependsOn entry names by default.
var helmReleaseGVK = helmv1.GroupVersion.WithKind(helmv1.HelmReleaseKind)

// dependencies resolves spec.dependsOn.
func dependencies(hr *helmv1.HelmRelease) ([]refwatch.Dependency, error) {
	deps := make([]refwatch.Dependency, 0, len(hr.Spec.DependsOn))
	for _, d := range hr.Spec.DependsOn {
		dep, err := refwatch.ResolveDependency(helmReleaseGVK, hr.Namespace, d.APIVersion, d.Kind, d.Namespace, d.Name)
		if err != nil {
			return nil, err
		}
		deps = append(deps, dep)
	}
	return deps, nil
}

// checkDependencies waits until every object of spec.dependsOn is Ready at its generation (or
// its readyExpr is true). The references were checked by validate.
func (r *HelmReleaseReconciler) checkDependencies(ctx context.Context, obj *helmv1.HelmRelease) error {
	if len(obj.Spec.DependsOn) == 0 {
		return nil
	}
	if cycle := r.dependencyCycle(ctx, obj); cycle != "" {
		return r.stall(ctx, obj, helmv1.DependencyCycleReason, "spec.dependsOn leads back to this HelmRelease: "+cycle)
	}
	deps, _ := dependencies(obj) // validate refused the ones that do not resolve
	if err := r.readyExprs(ctx, obj, deps); err != nil {
		return err
	}
	msg, err := r.watches.NotReady(ctx, r.watches.Cached(r.Client), deps)
	if err != nil {
		return r.failure(ctx, obj, "", helmv1.DependencyNotReadyReason, err)
	}
	if msg != "" {
		return r.wait(ctx, obj, helmv1.DependencyNotReadyReason, "%s", msg)
	}
	return nil
}

// dependencyCycle follows dependsOn through HelmReleases (from the cache) and returns the path
// back to obj, or "" when there is none.
func (r *HelmReleaseReconciler) dependencyCycle(ctx context.Context, obj *helmv1.HelmRelease) string {
	return plumbreconcile.DependencyCycle(ctx, r, obj, func() *helmv1.HelmRelease { return &helmv1.HelmRelease{} },
		func(hr *helmv1.HelmRelease) []types.NamespacedName {
			deps, _ := dependencies(hr) // a bad entry stalls that HelmRelease; it leads nowhere
			return refwatch.SameKind(helmReleaseGVK, deps)
		})
}

// refusedKinds describes the first reference of spec.chartRef and spec.dependsOn to a kind that
// did not opt in (shared/refwatch.Allowed), or returns "" when there is none. It runs after
// validate, before any reference is read or watched.
func (r *HelmReleaseReconciler) refusedKinds(ctx context.Context, obj *helmv1.HelmRelease) (string, error) {
	check := func(field string, gvk schema.GroupVersionKind) (string, error) {
		err := r.watches.Allowed(ctx, gvk)
		if errors.Is(err, refwatch.ErrKindRefused) {
			return fmt.Sprintf("%s: %v", field, err), nil
		}
		return "", err
	}
	gvk, _, _ := chartKey(obj) // validate refused one that does not resolve
	if msg, err := check("spec.chartRef", gvk); msg != "" || err != nil {
		return msg, err
	}
	deps, _ := dependencies(obj)
	for _, d := range deps {
		if msg, err := check("spec.dependsOn "+d.String(), d.GVK); msg != "" || err != nil {
			return msg, err
		}
	}
	return "", nil
}
