package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/metrics"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// HealthyCondition reports the health checks of the last apply.
const HealthyCondition = meta.HealthyCondition

// historyLength is how many runs status.history keeps.
const historyLength = 5

var ownedConditions = []string{meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition, HealthyCondition}

func markReconciling(obj conditions.Setter, format string, args ...any) {
	conditions.MarkReconciling(obj, applyv1.ProgressingReason, format, args...)
}

func markReady(obj conditions.Setter, format string, args ...any) {
	conditions.MarkTrue(obj, meta.ReadyCondition, applyv1.SucceededReason, format, args...)
}

func markFailed(obj conditions.Setter, reason, format string, args ...any) {
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, format, args...)
}

func markHealthy(obj conditions.Setter, status metav1.ConditionStatus, reason, format string, args ...any) {
	conditions.Set(obj, &metav1.Condition{Type: HealthyCondition, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// waitError asks to come back after the retry interval without counting as a failure.
type waitError struct{ msg string }

func (e *waitError) Error() string { return e.msg }

// wait marks Ready=False while something this Kustomization needs is not there yet.
func (r *KustomizationReconciler) wait(obj *applyv1.Kustomization, revision, reason, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if conditions.GetReason(obj, meta.ReadyCondition) != reason || conditions.GetMessage(obj, meta.ReadyCondition) != msg {
		r.event(obj, revision, corev1.EventTypeNormal, reason, "%s", msg)
	}
	markFailed(obj, reason, "%s", msg)
	return &waitError{msg}
}

// failure marks Ready=False with the reason, records a Warning event, and returns err.
func (r *KustomizationReconciler) failure(obj *applyv1.Kustomization, revision, reason string, err error) error {
	markFailed(obj, reason, "%v", err)
	r.event(obj, revision, corev1.EventTypeWarning, reason, "%v", err)
	return err
}

// stall marks a failure that retrying cannot fix; only a change of the object helps.
func (r *KustomizationReconciler) stall(obj *applyv1.Kustomization, reason, msg string) error {
	conditions.MarkStalled(obj, reason, "%s", msg)
	markFailed(obj, reason, "%s", msg)
	r.event(obj, "", corev1.EventTypeWarning, reason, "%s", msg)
	return reconcile.TerminalError(errors.New(msg))
}

func (r *KustomizationReconciler) event(obj *applyv1.Kustomization, revision, eventType, reason, format string, args ...any) {
	events.Record(r.Events, obj, revision, eventType, reason, format, args...)
}

// finalizeStatus settles conditions and history from the outcome, turns transient failures and
// waits into a requeue after the retry interval, and writes status in one patch.
func (r *KustomizationReconciler) finalizeStatus(ctx context.Context, obj *applyv1.Kustomization, patcher *patch.SerialPatcher, st *runInfo, result *ctrl.Result, retErr *error) {
	if v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations()); ok {
		obj.Status.LastHandledReconcileAt = v
	}
	setOutcome(obj, *retErr)
	if st.revision != "" && obj.DeletionTimestamp.IsZero() && !obj.Spec.Suspend {
		recordRun(obj, st, time.Now())
	}
	var w *waitError
	switch {
	case *retErr == nil, errors.Is(*retErr, reconcile.TerminalError(nil)):
	case errors.As(*retErr, &w):
		*retErr, *result = nil, ctrl.Result{RequeueAfter: obj.GetRetryInterval()}
	case obj.DeletionTimestamp.IsZero():
		log.FromContext(ctx).Info("reconcile failed, retrying", "after", obj.GetRetryInterval().String(), "error", (*retErr).Error())
		*retErr, *result = nil, ctrl.Result{RequeueAfter: obj.GetRetryInterval()}
	}
	if obj.DeletionTimestamp.IsZero() {
		metrics.RecordConditions(applyv1.KustomizationKind, obj.Namespace, obj.Name, obj.Status.Conditions)
	}
	err := patcher.Patch(ctx, obj, patch.WithOwnedConditions{Conditions: ownedConditions}, patch.WithFieldOwner(r.ControllerName))
	if err != nil && !(apierrors.IsNotFound(err) && !obj.DeletionTimestamp.IsZero()) {
		log.FromContext(ctx).Error(err, "patching status")
		*retErr = errors.Join(*retErr, err)
	}
}

// setOutcome is the pure part of finalizeStatus.
func setOutcome(obj *applyv1.Kustomization, err error) {
	var w *waitError
	switch {
	case !obj.DeletionTimestamp.IsZero(), obj.Spec.Suspend:
	case err == nil:
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.Delete(obj, meta.StalledCondition)
		obj.Status.ObservedGeneration = obj.Generation
	case errors.Is(err, reconcile.TerminalError(nil)):
		conditions.Delete(obj, meta.ReconcilingCondition)
		obj.Status.ObservedGeneration = obj.Generation
	case errors.As(err, &w):
		conditions.Delete(obj, meta.StalledCondition)
		conditions.MarkReconciling(obj, meta.ProgressingReason, "waiting: %s", w.msg)
	default:
		conditions.Delete(obj, meta.StalledCondition)
		if !conditions.IsFalse(obj, meta.ReadyCondition) {
			markFailed(obj, meta.FailedReason, "%v", err)
		}
		conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason, "retrying after: %s", conditions.GetReason(obj, meta.ReadyCondition))
	}
}

// recordRun adds the run to status.history, newest first. A run equal to the newest (revision,
// digest and result) is not added: a no-op reconcile writes nothing.
func recordRun(obj *applyv1.Kustomization, st *runInfo, now time.Time) {
	result := conditions.GetReason(obj, meta.ReadyCondition)
	entry := applyv1.Run{
		Revision: st.revision, Digest: st.digest, Result: result,
		Duration: metav1.Duration{Duration: now.Sub(st.start).Round(time.Millisecond)},
		Time:     metav1.NewTime(now),
	}
	h := obj.Status.History
	if len(h) > 0 && h[0].Revision == entry.Revision && h[0].Digest == entry.Digest && h[0].Result == entry.Result {
		return
	}
	obj.Status.History = append([]applyv1.Run{entry}, h...)
	if len(obj.Status.History) > historyLength {
		obj.Status.History = obj.Status.History[:historyLength]
	}
}
