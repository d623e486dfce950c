// Package status settles a reconcile's outcome in an object's conditions and writes the status in
// one patch: Ready, Reconciling and Stalled as DESIGN.md describes them, observedGeneration,
// lastHandledReconcileAt, and the plumb_condition metric.
package status

import (
	"context"
	"errors"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/metrics"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// Owned are the condition types a controller writes on its own objects.
var Owned = []string{meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition}

// Fields points at the status fields every kind has.
type Fields struct {
	Kind               string
	Suspend            bool
	ObservedGeneration *int64
	Requests           *meta.ReconcileRequestStatus
}

// Stall marks a failure that retrying cannot fix: Stalled=True, Ready=False, a Warning event, and
// a terminal error, so that only a change of the object reconciles it again.
func Stall(rec recorder.EventRecorder, obj conditions.Setter, reason, msg string) error {
	conditions.MarkStalled(obj, reason, "%s", msg)
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", msg)
	events.Record(rec, obj, "", corev1.EventTypeWarning, reason, "%s", msg)
	return reconcile.TerminalError(errors.New(msg))
}

// Fail marks Ready=False with the reason, records a Warning event, and returns err to retry with.
func Fail(rec recorder.EventRecorder, obj conditions.Setter, reason string, err error) error {
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%v", err)
	events.Record(rec, obj, "", corev1.EventTypeWarning, reason, "%v", err)
	return err
}

// Outcome sets the conditions and observedGeneration from the error a reconcile returned: nil
// clears Reconciling and Stalled; a terminal error keeps Stalled; any other error keeps Ready
// False and marks Reconciling with a retry. Deleted and suspended objects keep their last state.
func Outcome(obj conditions.Setter, f Fields, err error) {
	switch {
	case !obj.GetDeletionTimestamp().IsZero(), f.Suspend:
	case err == nil:
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.Delete(obj, meta.StalledCondition)
		*f.ObservedGeneration = obj.GetGeneration()
	case errors.Is(err, reconcile.TerminalError(nil)):
		conditions.Delete(obj, meta.ReconcilingCondition)
		*f.ObservedGeneration = obj.GetGeneration()
	default:
		conditions.Delete(obj, meta.StalledCondition)
		if !conditions.IsFalse(obj, meta.ReadyCondition) {
			conditions.MarkFalse(obj, meta.ReadyCondition, meta.FailedReason, "%v", err)
		}
		conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason, "retrying after: %s", conditions.GetReason(obj, meta.ReadyCondition))
	}
}

// Patch records the handled reconcile request, settles the outcome, and writes the status with
// owner as field owner. A failed patch joins retErr.
func Patch(ctx context.Context, obj conditions.Setter, f Fields, patcher *patch.SerialPatcher, owner string, retErr *error) {
	if v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations()); ok && f.Requests != nil {
		f.Requests.LastHandledReconcileAt = v
	}
	Outcome(obj, f, *retErr)
	if obj.GetDeletionTimestamp().IsZero() {
		metrics.RecordConditions(f.Kind, obj.GetNamespace(), obj.GetName(), obj.GetConditions())
	}
	err := patcher.Patch(ctx, obj, patch.WithOwnedConditions{Conditions: Owned}, patch.WithFieldOwner(owner))
	if err != nil && !(apierrors.IsNotFound(err) && !obj.GetDeletionTimestamp().IsZero()) {
		log.FromContext(ctx).Error(err, "patching status")
		*retErr = kerrors.NewAggregate([]error{*retErr, err})
	}
}
