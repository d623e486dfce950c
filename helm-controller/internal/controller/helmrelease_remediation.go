package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	"github.com/plumb-dev/plumb/shared/status"
)

// actionFailed handles a failed install or upgrade (or its wait or tests). A stop of the
// controller is not a failure of the release. Under the RetryOnFailure strategy a failure is
// counted and left as it is, to be tried again after the retry interval. A failure before Helm stored a revision (a chart
// that does not render, values its schema refuses) counts, but there is nothing to remediate.
// Otherwise the failure counts and is remediated (uninstall for an install; rollback or
// uninstall for an upgrade) unless it used up the retries and remediateLastFailure is off.
func (r *HelmReleaseReconciler) actionFailed(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, revision string, install bool, before int, msg error) error {
	reason, rem := helmv1.UpgradeFailedReason, plumbrelease.UpgradeRemediation(obj)
	if install {
		reason, rem = helmv1.InstallFailedReason, plumbrelease.InstallRemediation(obj)
	}
	if ctx.Err() != nil {
		markFailed(obj, reason, "interrupted: %v", msg)
		return msg
	}
	if install {
		obj.Status.InstallFailures++
	} else {
		obj.Status.UpgradeFailures++
	}
	conditions.MarkFalse(obj, helmv1.ReleasedCondition, reason, "%v", msg)
	retry, after := plumbrelease.RetryOnFailure(obj, install)
	if retry {
		// RetryOnFailure: no remediation and no retry limit; the action is tried again after
		// its retryInterval.
		stateOf(ctx).retryAfter = after
	}
	if h.LatestVersion() <= before {
		return r.failure(ctx, obj, revision, helmv1.RenderFailedReason, msg)
	}
	failures := obj.Status.UpgradeFailures
	if install {
		failures = obj.Status.InstallFailures
	}
	if retry {
		return r.failure(ctx, obj, revision, reason, fmt.Errorf("%w; trying again in %s (RetryOnFailure)", msg, after))
	}
	if !plumbrelease.Exhausted(failures, rem) || plumbrelease.RemediateLast(rem, install) {
		if plumbrelease.UninstallRemediates(rem, install) {
			r.remediateUninstall(ctx, obj, h, revision)
		} else {
			r.rollback(ctx, obj, h, revision)
		}
	}
	return r.failure(ctx, obj, revision, reason, msg)
}

// retriesExhausted stops acting until the chart, values or spec change, or the reset
// annotation is set; the release is checked again at the interval for such changes.
func (r *HelmReleaseReconciler) retriesExhausted(ctx context.Context, obj *helmv1.HelmRelease, revision, what string, failures int64) (ctrl.Result, error) {
	msg := fmt.Sprintf("%s failed %d times, retries exhausted; change the chart, values or spec, or annotate %s=<time> to try again: %s",
		what, failures, helmv1.ResetAtAnnotation, conditions.GetMessage(obj, helmv1.ReleasedCondition))
	if conditions.GetReason(obj, meta.ReadyCondition) != helmv1.RetriesExhaustedReason {
		r.event(ctx, obj, revision, corev1.EventTypeWarning, helmv1.RetriesExhaustedReason, "%s", msg)
	}
	markFailed(obj, helmv1.RetriesExhaustedReason, "%s", msg)
	return ctrl.Result{}, status.Exhausted(helmv1.RetriesExhaustedReason, msg)
}

// rollback returns the release to its last deployed revision.
func (r *HelmReleaseReconciler) rollback(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, revision string) {
	version, err := h.Rollback(plumbrelease.RollbackOptionsFor(obj))
	if err != nil {
		conditions.MarkFalse(obj, helmv1.RemediatedCondition, helmv1.RollbackFailedReason, "rollback failed: %v", err)
		r.event(ctx, obj, revision, corev1.EventTypeWarning, helmv1.RollbackFailedReason, "rollback of release %s failed: %v", obj.GetReleaseName(), err)
		return
	}
	conditions.MarkTrue(obj, helmv1.RemediatedCondition, helmv1.RollbackSucceededReason, "rolled back to revision %d after a failed upgrade", version)
	r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.RollbackSucceededReason, "rolled back release %s to revision %d after a failed upgrade", obj.GetReleaseName(), version)
}

// remediateUninstall removes a failed release.
func (r *HelmReleaseReconciler) remediateUninstall(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, revision string) {
	if err := h.Uninstall(plumbrelease.UninstallOptionsFor(obj)); err != nil {
		conditions.MarkFalse(obj, helmv1.RemediatedCondition, helmv1.UninstallFailedReason, "uninstall failed: %v", err)
		r.event(ctx, obj, revision, corev1.EventTypeWarning, helmv1.UninstallFailedReason, "uninstall of failed release %s failed: %v", obj.GetReleaseName(), err)
		return
	}
	conditions.MarkTrue(obj, helmv1.RemediatedCondition, helmv1.UninstallSucceededReason, "uninstalled the failed release")
	r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.UninstallSucceededReason, "uninstalled failed release %s", obj.GetReleaseName())
}
