package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/status"
)

// HealthyCondition reports the health checks of the last apply.
const HealthyCondition = meta.HealthyCondition

// historyLength is how many runs status.history keeps.
const historyLength = 5

func markReconciling(obj conditions.Setter, format string, args ...any) {
	conditions.MarkReconciling(obj, applyv1.ProgressingReason, format, args...)
}

func markReady(obj conditions.Setter, format string, args ...any) {
	conditions.MarkTrue(obj, meta.ReadyCondition, applyv1.SucceededReason, format, args...)
}

func markHealthy(obj conditions.Setter, status metav1.ConditionStatus, reason, format string, args ...any) {
	conditions.Set(obj, &metav1.Condition{Type: HealthyCondition, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (r *KustomizationReconciler) event(obj *applyv1.Kustomization, revision, eventType, reason, format string, args ...any) {
	events.Record(r.Events, obj, revision, eventType, reason, format, args...)
}

// finalizeStatus settles the outcome (shared/status), adds the run to the history, and writes
// status in one patch; transient failures and waits come back after the retry interval.
func (r *KustomizationReconciler) finalizeStatus(ctx context.Context, obj *applyv1.Kustomization, patcher *status.Patcher, st *runInfo, result *ctrl.Result, retErr *error) {
	f := status.Fields{Kind: applyv1.KustomizationKind, Suspend: obj.Spec.Suspend,
		ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus,
		RetryInterval: obj.GetRetryInterval()}
	// The history entry records the settled Ready reason; Finish settles again, to the same.
	status.Outcome(obj, f, *retErr)
	if st.revision != "" && obj.DeletionTimestamp.IsZero() && !obj.Spec.Suspend {
		recordRun(obj, st, time.Now())
	}
	if st.failing && !st.announced && *retErr == nil && conditions.IsTrue(obj, meta.ReadyCondition) {
		// A recovery is news even when nothing was applied (a health check that passes on a
		// retry, a source that came back): an Alert's notifyOn and incident Providers resolve on
		// it.
		r.event(obj, st.revision, corev1.EventTypeNormal, applyv1.SucceededReason, "recovered: %s", conditions.GetMessage(obj, meta.ReadyCondition))
	}
	status.Finish(ctx, obj, f, patcher, r.ControllerName, result, retErr)
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
