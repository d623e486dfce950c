package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/metrics"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/redact"
)

var ownedConditions = []string{
	meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition,
	helmv1.ReleasedCondition, helmv1.TestSuccessCondition, helmv1.RemediatedCondition, helmv1.DriftedCondition,
}

func markFailed(obj conditions.Setter, reason, format string, args ...any) {
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, format, args...)
}

// waitError asks to come back after the dependency requeue without counting as a failure.
type waitError struct{ msg string }

func (e *waitError) Error() string { return e.msg }

// exhaustedError stops acting until something changes: Stalled, checked again at the interval.
type exhaustedError struct{ msg string }

func (e *exhaustedError) Error() string { return e.msg }

// wait marks Ready=False while something the release needs is not there yet.
func (r *HelmReleaseReconciler) wait(ctx context.Context, obj *helmv1.HelmRelease, reason, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if conditions.GetReason(obj, meta.ReadyCondition) != reason || conditions.GetMessage(obj, meta.ReadyCondition) != msg {
		r.event(ctx, obj, "", corev1.EventTypeNormal, reason, "%s", msg)
	}
	markFailed(obj, reason, "%s", msg)
	return &waitError{msg: msg}
}

// failure marks Ready=False with the reason, records a Warning event and returns err to retry.
func (r *HelmReleaseReconciler) failure(ctx context.Context, obj *helmv1.HelmRelease, revision, reason string, err error) error {
	err = redact.Error(err, secretsOf(ctx))
	markFailed(obj, reason, "%v", err)
	r.event(ctx, obj, revision, corev1.EventTypeWarning, reason, "%v", err)
	return err
}

// stall marks a failure that retrying cannot fix and returns a terminal error.
func (r *HelmReleaseReconciler) stall(ctx context.Context, obj *helmv1.HelmRelease, reason, msg string) error {
	conditions.MarkStalled(obj, reason, "%s", msg)
	markFailed(obj, reason, "%s", msg)
	r.event(ctx, obj, "", corev1.EventTypeWarning, reason, "%s", msg)
	return reconcile.TerminalError(errors.New(msg))
}

// event records an Event with the values read from Secrets masked.
func (r *HelmReleaseReconciler) event(ctx context.Context, obj *helmv1.HelmRelease, revision, eventType, reason, format string, args ...any) {
	events.Record(r.Events, obj, revision, eventType, reason, "%s", redact.String(fmt.Sprintf(format, args...), secretsOf(ctx)))
}

// finalizeStatus settles the conditions from the outcome and writes status in one patch.
func (r *HelmReleaseReconciler) finalizeStatus(ctx context.Context, obj *helmv1.HelmRelease, patcher *patch.SerialPatcher, result *ctrl.Result, retErr *error) {
	if v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations()); ok {
		obj.Status.LastHandledReconcileAt = v
	}
	setOutcome(obj, *retErr)
	var w *waitError
	var ex *exhaustedError
	switch {
	case *retErr == nil, errors.Is(*retErr, reconcile.TerminalError(nil)):
	case errors.As(*retErr, &ex):
		*retErr, *result = nil, ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}
	case errors.As(*retErr, &w):
		*retErr, *result = nil, ctrl.Result{RequeueAfter: plumbreconcile.Jitter(r.RequeueDependency)}
	case obj.DeletionTimestamp.IsZero():
		log.FromContext(ctx).Info("reconcile failed, retrying", "error", redact.String((*retErr).Error(), secretsOf(ctx)))
	}
	for i := range obj.Status.Conditions {
		obj.Status.Conditions[i].Message = redact.String(obj.Status.Conditions[i].Message, secretsOf(ctx))
	}
	if obj.DeletionTimestamp.IsZero() {
		metrics.RecordConditions(helmv1.HelmReleaseKind, obj.Namespace, obj.Name, obj.Status.Conditions)
	}
	err := patcher.Patch(ctx, obj, patch.WithOwnedConditions{Conditions: ownedConditions}, patch.WithFieldOwner(r.ControllerName))
	if err != nil && !(apierrors.IsNotFound(err) && !obj.DeletionTimestamp.IsZero()) {
		log.FromContext(ctx).Error(err, "patching status")
		*retErr = errors.Join(*retErr, err)
	}
}

// setOutcome is the pure part of finalizeStatus.
func setOutcome(obj *helmv1.HelmRelease, err error) {
	var w *waitError
	var ex *exhaustedError
	switch {
	case !obj.DeletionTimestamp.IsZero(), obj.Spec.Suspend:
	case errors.As(err, &ex):
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.MarkStalled(obj, helmv1.RetriesExhaustedReason, "%s", ex.msg)
		obj.Status.ObservedGeneration = obj.Generation
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
