package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	ctrl "sigs.k8s.io/controller-runtime"

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
		WaitInterval: r.RequeueDependency, Interval: obj.Spec.Interval.Duration,
		Redact: func(s string) string { return redact.String(s, secretsOf(ctx)) }}
}

// finalizeStatus settles the conditions from the outcome and writes status in one patch.
func (r *HelmReleaseReconciler) finalizeStatus(ctx context.Context, obj *helmv1.HelmRelease, patcher *status.Patcher, result *ctrl.Result, retErr *error) {
	status.Finish(ctx, obj, r.statusFields(ctx, obj), patcher, r.ControllerName, result, retErr)
}
