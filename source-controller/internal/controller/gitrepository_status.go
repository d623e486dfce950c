package controller

import (
	"context"
	"errors"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/metrics"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// ownedConditions are the condition types this controller writes.
var ownedConditions = []string{meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition}

func markReconciling(obj conditions.Setter, format string, args ...any) {
	conditions.MarkReconciling(obj, sourcev1.ProgressingReason, format, args...)
}

func markReady(obj conditions.Setter, revision string) {
	conditions.MarkTrue(obj, meta.ReadyCondition, sourcev1.SucceededReason, "stored artifact for revision %s", revision)
}

func markFailed(obj conditions.Setter, reason, format string, args ...any) {
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, format, args...)
}

// stall marks a failure that retrying cannot fix: Stalled=True, Ready=False, a Warning event, and
// a terminal error so that only a change of the object reconciles it again.
func (r *GitRepositoryReconciler) stall(obj *sourcev1.GitRepository, reason, msg string) error {
	conditions.MarkStalled(obj, reason, "%s", msg)
	markFailed(obj, reason, "%s", msg)
	r.event(obj, "", corev1.EventTypeWarning, reason, "%s", msg)
	return reconcile.TerminalError(errors.New(msg))
}

// event records an Event on the object, annotated with the revision it is about when known.
func (r *GitRepositoryReconciler) event(obj *sourcev1.GitRepository, revision, eventType, reason, format string, args ...any) {
	events.Record(r.Events, obj, revision, eventType, reason, format, args...)
}

// finalizeStatus settles the conditions from the outcome and writes status in one patch.
func (r *GitRepositoryReconciler) finalizeStatus(ctx context.Context, obj *sourcev1.GitRepository, patcher *patch.SerialPatcher, result *ctrl.Result, retErr *error) {
	if v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations()); ok {
		obj.Status.LastHandledReconcileAt = v
	}
	setOutcome(obj, *retErr)
	if obj.DeletionTimestamp.IsZero() {
		metrics.RecordConditions(sourcev1.GitRepositoryKind, obj.Namespace, obj.Name, obj.Status.Conditions)
		if a := obj.Status.Artifact; a != nil && a.Size != nil {
			metrics.RecordArtifactSize(sourcev1.GitRepositoryKind, obj.Namespace, obj.Name, *a.Size)
		}
	}
	err := patcher.Patch(ctx, obj,
		patch.WithOwnedConditions{Conditions: ownedConditions},
		patch.WithFieldOwner(r.ControllerName),
	)
	if err != nil && !(apierrors.IsNotFound(err) && !obj.DeletionTimestamp.IsZero()) {
		log.FromContext(ctx).Error(err, "patching status")
		*retErr = kerrors.NewAggregate([]error{*retErr, err})
	}
}

// setOutcome is the pure part of finalizeStatus: conditions and observedGeneration from the error
// the reconcile returned.
func setOutcome(obj *sourcev1.GitRepository, err error) {
	switch {
	case !obj.DeletionTimestamp.IsZero(), obj.Spec.Suspend:
		// Leave the last observed state as it is.
	case err == nil:
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.Delete(obj, meta.StalledCondition)
		obj.Status.ObservedGeneration = obj.Generation
	case errors.Is(err, reconcile.TerminalError(nil)):
		conditions.Delete(obj, meta.ReconcilingCondition)
		obj.Status.ObservedGeneration = obj.Generation
	default:
		conditions.Delete(obj, meta.StalledCondition)
		if !conditions.IsFalse(obj, meta.ReadyCondition) {
			markFailed(obj, meta.FailedReason, "%v", err)
		}
		conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason, "retrying after: %s", conditions.GetReason(obj, meta.ReadyCondition))
	}
}
