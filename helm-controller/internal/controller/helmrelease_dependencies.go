package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/refwatch"
)

// dependencyKey resolves a dependsOn entry's defaults.
func dependencyKey(hr *helmv1.HelmRelease, d helmv1.DependencyReference) (schema.GroupVersionKind, types.NamespacedName) {
	apiVersion, kind, ns := d.APIVersion, d.Kind, d.Namespace
	if apiVersion == "" {
		apiVersion = helmv1.GroupVersion.String()
	}
	if kind == "" {
		kind = helmv1.HelmReleaseKind
	}
	if ns == "" {
		ns = hr.Namespace
	}
	gv, _ := schema.ParseGroupVersion(apiVersion)
	return gv.WithKind(kind), types.NamespacedName{Namespace: ns, Name: d.Name}
}

// checkDependencies waits until every object of spec.dependsOn is Ready at its generation. The
// references were checked by validate.
func (r *HelmReleaseReconciler) checkDependencies(ctx context.Context, obj *helmv1.HelmRelease) error {
	if len(obj.Spec.DependsOn) == 0 {
		return nil
	}
	if cycle := r.dependencyCycle(ctx, obj); cycle != "" {
		return r.stall(ctx, obj, helmv1.DependencyCycleReason, "spec.dependsOn leads back to this HelmRelease: "+cycle)
	}
	for _, d := range obj.Spec.DependsOn {
		gvk, key := dependencyKey(obj, d)
		name := fmt.Sprintf("%s %s", gvk.Kind, key)
		u, err := r.watches.Get(ctx, r.Client, gvk, key)
		if err != nil {
			return r.failure(ctx, obj, "", helmv1.DependencyNotReadyReason, fmt.Errorf("dependency %s: %w", name, err))
		}
		if u == nil {
			return r.wait(ctx, obj, helmv1.DependencyNotReadyReason, "dependency %s not found", name)
		}
		if !refwatch.ReadyAtGeneration(u) {
			return r.wait(ctx, obj, helmv1.DependencyNotReadyReason, "dependency %s is not ready", name)
		}
	}
	return nil
}

// dependencyCycle follows dependsOn through HelmReleases (from the cache) and returns the path
// back to obj, or "" when there is none.
func (r *HelmReleaseReconciler) dependencyCycle(ctx context.Context, obj *helmv1.HelmRelease) string {
	return plumbreconcile.DependencyCycle(ctx, r, obj, func() *helmv1.HelmRelease { return &helmv1.HelmRelease{} },
		func(hr *helmv1.HelmRelease) []types.NamespacedName {
			var out []types.NamespacedName
			for _, d := range hr.Spec.DependsOn {
				if gvk, key := dependencyKey(hr, d); gvk.Group == helmv1.GroupVersion.Group && gvk.Kind == helmv1.HelmReleaseKind {
					out = append(out, key)
				}
			}
			return out
		})
}
