package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/redact"
	"github.com/plumb-dev/plumb/shared/status"
)

func markFailed(obj conditions.Setter, reason, format string, args ...any) {
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, format, args...)
}

// The outcomes of shared/status, with the values read from Secrets masked.

// wait marks Ready=False while something the release needs is not there yet.
func (r *HelmReleaseReconciler) wait(ctx context.Context, obj *helmv1.HelmRelease, reason, format string, args ...any) error {
	return status.Wait(r.Events, obj, "", reason, "%s", redact.String(fmt.Sprintf(format, args...), secretsOf(ctx)))
}

// failure marks Ready=False with the reason, records a Warning event and returns err to retry.
func (r *HelmReleaseReconciler) failure(ctx context.Context, obj *helmv1.HelmRelease, revision, reason string, err error) error {
	return status.Fail(r.Events, obj, revision, reason, redact.Error(err, secretsOf(ctx)))
}

// stall marks a failure that retrying cannot fix and returns a terminal error.
func (r *HelmReleaseReconciler) stall(ctx context.Context, obj *helmv1.HelmRelease, reason, msg string) error {
	return status.Stall(r.Events, obj, reason, redact.String(msg, secretsOf(ctx)))
}

// event records an Event with the values read from Secrets masked.
func (r *HelmReleaseReconciler) event(ctx context.Context, obj *helmv1.HelmRelease, revision, eventType, reason, format string, args ...any) {
	events.Record(r.Events, obj, revision, eventType, reason, "%s", redact.String(fmt.Sprintf(format, args...), secretsOf(ctx)))
}

// statusFields are shared/status's view of a HelmRelease: waits come back after the dependency
// requeue, exhausted retries at the interval, and nothing read from a Secret is written.
func (r *HelmReleaseReconciler) statusFields(ctx context.Context, obj *helmv1.HelmRelease) status.Fields {
	return status.Fields{Kind: helmv1.HelmReleaseKind, Suspend: obj.Spec.Suspend,
		ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus,
		WaitInterval: r.RequeueDependency, Interval: obj.Spec.Interval.Duration, RetryInterval: stateOf(ctx).retryAfter,
		Redact: func(s string) string { return redact.String(s, secretsOf(ctx)) }}
}

// finalizeStatus settles the conditions from the outcome and writes status in one patch.
func (r *HelmReleaseReconciler) finalizeStatus(ctx context.Context, obj *helmv1.HelmRelease, patcher *status.Patcher, result *ctrl.Result, retErr *error) {
	status.Finish(ctx, obj, r.statusFields(ctx, obj), patcher, r.ControllerName, result, retErr)
}

// reconcileState is what the steps of one reconcile share besides the object: the status
// patcher, for the one patch written before a Helm action, and the retry interval of a
// RetryOnFailure strategy that failed.
type reconcileState struct {
	patcher    *status.Patcher
	retryAfter time.Duration
}

// reconcileStateKey carries a reconcile's *reconcileState in its context.
type reconcileStateKey struct{}

// stateOf is the reconcile's state; an empty one outside a reconcile (tests calling steps).
func stateOf(ctx context.Context) *reconcileState {
	if st, ok := ctx.Value(reconcileStateKey{}).(*reconcileState); ok {
		return st
	}
	return &reconcileState{}
}

// progressing marks Ready Unknown (and Reconciling) with reason Progressing and writes it at
// once, so that a long Helm action is seen as under way, not as the last outcome. A failed
// write is logged: the reconcile's own patch at its end writes the outcome.
func (r *HelmReleaseReconciler) progressing(ctx context.Context, obj *helmv1.HelmRelease, format string, args ...any) {
	msg := redact.String(fmt.Sprintf(format, args...), secretsOf(ctx))
	conditions.MarkUnknown(obj, meta.ReadyCondition, helmv1.ProgressingReason, "%s", msg)
	conditions.MarkReconciling(obj, helmv1.ProgressingReason, "%s", msg)
	st := stateOf(ctx)
	if st.patcher == nil {
		return
	}
	// A copy is written: the server's answer must not replace the spec this reconcile acts on.
	cp := obj.DeepCopy()
	conds := cp.GetConditions()
	for i := range conds {
		conds[i].Message = redact.String(conds[i].Message, secretsOf(ctx))
	}
	if err := st.patcher.Patch(ctx, cp, r.ControllerName); err != nil {
		log.FromContext(ctx).Error(err, "writing the Progressing status")
	}
}
