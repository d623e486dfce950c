package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/metrics"
)

// finalize deletes what the Kustomization applied, as spec.deletionPolicy says (nothing when
// suspended), then lets it go.
func (r *KustomizationReconciler) finalize(ctx context.Context, obj *applyv1.Kustomization) error {
	del := false
	switch obj.Spec.DeletionPolicy {
	case applyv1.DeletionPolicyDelete:
		del = true
	case applyv1.DeletionPolicyOrphan:
	default:
		del = obj.Spec.Prune
	}
	if del && !obj.Spec.Suspend && obj.Status.Inventory != nil {
		objs, err := objects(obj.Status.Inventory)
		if err != nil {
			return err
		}
		rm, err := r.manager(ctx, obj)
		var cs *ssa.ChangeSet
		if err == nil {
			cs, err = rm.DeleteAll(ctx, objs, ssa.DeleteOptions{
				PropagationPolicy: metav1.DeletePropagationBackground,
				Inclusions:        rm.GetOwnerLabels(obj.Name, obj.Namespace),
				Exclusions:        map[string]string{applyv1.PruneAnnotation: "Disabled"},
			})
		}
		switch {
		case err == nil:
			if s := summary(cs); s != "" {
				r.event(obj, obj.Status.LastAppliedRevision, "Normal", applyv1.SucceededReason, "%s", s)
			}
		case gone(err):
			// The identity or cluster to delete with went first (a namespace being deleted takes
			// its Secrets and ServiceAccounts along): deleting can never succeed, so let go.
			r.event(obj, "", "Warning", applyv1.PruneFailedReason, "applied objects left in place: %v", err)
		default:
			return r.failure(obj, "", applyv1.PruneFailedReason, fmt.Errorf("delete applied objects: %w", err))
		}
	}
	metrics.Forget(applyv1.KustomizationKind, obj.Namespace, obj.Name)
	controllerutil.RemoveFinalizer(obj, applyv1.Finalizer)
	return nil
}

// gone reports an error that retrying a deletion cannot fix: the kubeconfig Secret is missing,
// or the impersonated ServiceAccount no longer exists and is refused.
func gone(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
}
