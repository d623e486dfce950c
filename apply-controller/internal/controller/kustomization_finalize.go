package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/status"
)

// finalize deletes what the Kustomization applied, as spec.deletionPolicy says (nothing when
// suspended), then lets it go.
func (r *KustomizationReconciler) finalize(ctx context.Context, obj *applyv1.Kustomization) error {
	del := false
	switch obj.Spec.DeletionPolicy {
	case applyv1.DeletionPolicyDelete, applyv1.DeletionPolicyWaitForTermination:
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
		rm, _, err := r.manager(ctx, obj)
		var cs *ssa.ChangeSet
		if err == nil {
			cs, err = rm.DeleteAll(ctx, objs, ssa.DeleteOptions{
				PropagationPolicy: metav1.DeletePropagationBackground,
				Inclusions:        rm.GetOwnerLabels(obj.Name, obj.Namespace),
				Exclusions:        applyv1.PruneDisabledSelector(),
			})
		}
		switch {
		case err == nil:
			if s := summary(cs); s != "" {
				r.event(obj, obj.Status.LastAppliedRevision, "Normal", applyv1.SucceededReason, "%s", s)
			}
			if obj.Spec.DeletionPolicy == applyv1.DeletionPolicyWaitForTermination {
				r.waitForTermination(obj, rm, cs)
			}
		case r.identityGone(ctx, obj):
			// The identity or cluster to delete with went first (a namespace being deleted takes
			// its Secrets and ServiceAccounts along): deleting can never succeed, so let go.
			r.event(obj, "", "Warning", applyv1.PruneFailedReason, "applied objects left in place: %v", err)
		default:
			return status.Fail(r.Events, obj, "", applyv1.PruneFailedReason, fmt.Errorf("delete applied objects: %w", err))
		}
	}
	r.records.forget(client.ObjectKeyFromObject(obj))
	controllerutil.RemoveFinalizer(obj, applyv1.Finalizer)
	return nil
}

// waitForTermination waits, up to spec.timeout, until the objects deleted are gone (their
// finalizers done); after the timeout the Kustomization is let go all the same, with a
// Warning, as Flux does.
func (r *KustomizationReconciler) waitForTermination(obj *applyv1.Kustomization, rm *ssa.ResourceManager, cs *ssa.ChangeSet) {
	err := rm.WaitForSetTermination(cs, ssa.WaitOptions{Interval: terminationPoll, Timeout: obj.GetTimeout()})
	if err != nil {
		r.event(obj, obj.Status.LastAppliedRevision, "Warning", applyv1.TerminationTimeoutReason,
			"deleted objects not gone after %s (deletionPolicy WaitForTermination): %v", obj.GetTimeout(), err)
	}
}

// terminationPoll is how often deleted objects are looked for while waiting for them to go.
const terminationPoll = 500 * time.Millisecond

// identityGone reports whether what the Kustomization deletes with no longer exists: its
// kubeconfig Secret or ConfigMap, or the ServiceAccount it impersonates. Any other failure (a ServiceAccount
// without delete rights, an unreachable cluster) is retried: objects are not orphaned by it.
func (r *KustomizationReconciler) identityGone(ctx context.Context, obj *applyv1.Kustomization) bool {
	if kc := obj.Spec.KubeConfig; kc != nil {
		var err error
		if kc.ConfigMapRef != nil {
			cm := &corev1.ConfigMap{}
			err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: kc.ConfigMapRef.Name}, cm)
			if sa := cm.Data[meta.KubeConfigKeyServiceAccountName]; err == nil && sa != "" {
				// The ServiceAccount whose tokens reach the cluster.
				err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: sa}, &corev1.ServiceAccount{})
			}
		} else if kc.SecretRef != nil {
			err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: kc.SecretRef.Name}, &corev1.Secret{})
		}
		if apierrors.IsNotFound(err) {
			return true
		}
	}
	sa := obj.Spec.ServiceAccountName
	if sa == "" {
		sa = r.DefaultServiceAccount
	}
	if sa == "" {
		return false
	}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: sa}, &corev1.ServiceAccount{})
	return apierrors.IsNotFound(err) && obj.Spec.KubeConfig == nil
}
