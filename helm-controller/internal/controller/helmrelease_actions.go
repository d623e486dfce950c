package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/ssa"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	"github.com/plumb-dev/plumb/shared/health"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// install installs the chart (replace: over a release uninstalled or whose first install
// failed), then confirms it; a failure is remediated by actionFailed.
func (r *HelmReleaseReconciler) install(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, ch *chart.Chart, vals map[string]any, a *meta.Artifact, replace bool) (ctrl.Result, error) {
	if retry, _ := plumbrelease.RetryOnFailure(obj, true); !retry && plumbrelease.Exhausted(obj.Status.InstallFailures, plumbrelease.InstallRemediation(obj)) {
		return r.retriesExhausted(ctx, obj, a.Revision, "install", obj.Status.InstallFailures)
	}
	_, timeout := plumbrelease.WaitSettings(obj, true)
	crds := plumbrelease.PlanCRDs(plumbrelease.InstallCRDsPolicy(obj), true)
	if crds.Write {
		if err := r.applyCRDs(ctx, obj, ch, crds.Replace); err != nil {
			return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InstallFailedReason, fmt.Errorf("CRDs of chart %s: %w", ch.Name(), err))
		}
	}
	opts := plumbrelease.InstallOptionsFor(obj)
	opts.Replace = replace || obj.Spec.Install != nil && obj.Spec.Install.Replace
	opts.SkipCRDs = crds.SkipByHelm
	opts.Labels = plumbrelease.Labels(obj, plumbrelease.ChartDigest(a.Digest))
	opts.Timeout = timeout
	r.progressing(ctx, obj, "installing chart %s %s", ch.Name(), ch.Metadata.Version)
	before := h.LatestVersion()
	rls, err := h.Install(ctx, ch, vals, opts)
	if err == nil {
		err = r.confirm(ctx, obj, h, rls, true, a.Revision)
	}
	if err != nil {
		return ctrl.Result{}, r.actionFailed(ctx, obj, h, a.Revision, true, before, fmt.Errorf("install of chart %s %s failed: %w", ch.Name(), ch.Metadata.Version, err))
	}
	return r.installed(ctx, obj, rls, ch, a)
}

// installed records a successful install.
func (r *HelmReleaseReconciler) installed(ctx context.Context, obj *helmv1.HelmRelease, rls *release.Release, ch *chart.Chart, a *meta.Artifact) (ctrl.Result, error) {
	obj.Status.InstallFailures = 0
	conditions.MarkTrue(obj, helmv1.ReleasedCondition, helmv1.InstallSucceededReason, "installed chart %s %s as revision %d", ch.Name(), ch.Metadata.Version, rls.Version)
	conditions.Delete(obj, helmv1.RemediatedCondition)
	conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.InstallSucceededReason, "installed release %s at revision %d: chart %s %s", rls.Name, rls.Version, ch.Name(), ch.Metadata.Version)
	ignoredTestFailure(obj, conditions.IsFalse(obj, helmv1.TestSuccessCondition))
	r.event(ctx, obj, a.Revision, corev1.EventTypeNormal, helmv1.InstallSucceededReason, "installed release %s revision %d, chart %s %s", rls.Name, rls.Version, ch.Name(), ch.Metadata.Version)
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// upgrade upgrades the release to the chart and values, then confirms it; a failure is
// remediated by actionFailed. With install, the upgrade tries again a first install that
// failed under install.strategy RetryOnFailure, and counts as that install.
func (r *HelmReleaseReconciler) upgrade(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, ch *chart.Chart, vals map[string]any, a *meta.Artifact, install bool) (ctrl.Result, error) {
	if retry, _ := plumbrelease.RetryOnFailure(obj, install); !retry && plumbrelease.Exhausted(obj.Status.UpgradeFailures, plumbrelease.UpgradeRemediation(obj)) {
		return r.retriesExhausted(ctx, obj, a.Revision, "upgrade", obj.Status.UpgradeFailures)
	}
	_, timeout := plumbrelease.WaitSettings(obj, false)
	if crds := plumbrelease.PlanCRDs(plumbrelease.UpgradeCRDsPolicy(obj), false); crds.Write {
		if err := r.applyCRDs(ctx, obj, ch, crds.Replace); err != nil {
			return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.UpgradeFailedReason, fmt.Errorf("CRDs of chart %s: %w", ch.Name(), err))
		}
	}
	opts := plumbrelease.UpgradeOptionsFor(obj)
	opts.Labels = plumbrelease.Labels(obj, plumbrelease.ChartDigest(a.Digest))
	opts.Timeout = timeout
	r.progressing(ctx, obj, "upgrading to chart %s %s", ch.Name(), ch.Metadata.Version)
	before := h.LatestVersion()
	rls, err := h.Upgrade(ctx, ch, vals, opts)
	if err == nil {
		err = r.confirm(ctx, obj, h, rls, install, a.Revision)
	}
	if err != nil {
		return ctrl.Result{}, r.actionFailed(ctx, obj, h, a.Revision, install, before, fmt.Errorf("upgrade to chart %s %s failed: %w", ch.Name(), ch.Metadata.Version, err))
	}
	if install {
		return r.installed(ctx, obj, rls, ch, a)
	}
	obj.Status.UpgradeFailures = 0
	conditions.MarkTrue(obj, helmv1.ReleasedCondition, helmv1.UpgradeSucceededReason, "upgraded to chart %s %s as revision %d", ch.Name(), ch.Metadata.Version, rls.Version)
	conditions.Delete(obj, helmv1.RemediatedCondition)
	conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.UpgradeSucceededReason, "upgraded release %s to revision %d: chart %s %s", rls.Name, rls.Version, ch.Name(), ch.Metadata.Version)
	ignoredTestFailure(obj, conditions.IsFalse(obj, helmv1.TestSuccessCondition))
	r.event(ctx, obj, a.Revision, corev1.EventTypeNormal, helmv1.UpgradeSucceededReason, "upgraded release %s to revision %d, chart %s %s", rls.Name, rls.Version, ch.Name(), ch.Metadata.Version)
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// applyCRDs creates the CRDs of the chart's crds/ folder that are missing, and with replace
// also updates those that exist (server-side apply), as the release's identity.
func (r *HelmReleaseReconciler) applyCRDs(ctx context.Context, obj *helmv1.HelmRelease, ch *chart.Chart, replace bool) error {
	if len(ch.CRDObjects()) == 0 {
		return nil
	}
	cl, err := r.cluster(ctx, obj)
	if err != nil {
		return err
	}
	c, err := cl.Client()
	if err != nil {
		return err
	}
	mapper, err := cl.Mapper()
	if err != nil {
		return err
	}
	objs, err := plumbrelease.CRDObjects(ch, mapper)
	if err != nil {
		return err
	}
	if replace {
		rm := ssa.NewResourceManager(c, nil, ssa.Owner{Field: r.ControllerName})
		opts := ssa.DefaultApplyOptions()
		opts.Force = true
		_, err := rm.ApplyAllStaged(ctx, objs, opts)
		return err
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: %w", health.Describe(o), err)
		}
	}
	return nil
}

// confirm waits for the new revision's health (of an install, or an upgrade), runs its tests,
// then labels it healthy: until then a stopped controller leaves it to be checked again.
func (r *HelmReleaseReconciler) confirm(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, rls *release.Release, install bool, revision string) error {
	if wait, timeout := plumbrelease.WaitSettings(obj, install); wait {
		if err := r.waitHealthy(ctx, obj, h, rls, timeout, plumbrelease.WaitForJobs(obj, install)); err != nil {
			return err
		}
	}
	if err := r.runTests(ctx, obj, h, install, revision); err != nil {
		return err
	}
	return h.MarkHealthy(rls)
}

// recheck confirms a revision whose health wait or tests were cut short by a stop.
func (r *HelmReleaseReconciler) recheck(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, cur *release.Release, a *meta.Artifact) (ctrl.Result, error) {
	install := cur.Version == 1
	failures, rem, what := obj.Status.UpgradeFailures, plumbrelease.UpgradeRemediation(obj), "upgrade"
	if install {
		failures, rem, what = obj.Status.InstallFailures, plumbrelease.InstallRemediation(obj), "install"
	}
	if retry, _ := plumbrelease.RetryOnFailure(obj, install); !retry && plumbrelease.Exhausted(failures, rem) {
		return r.retriesExhausted(ctx, obj, a.Revision, what, failures)
	}
	if err := r.confirm(ctx, obj, h, cur, install, a.Revision); err != nil {
		// The revision is stored: a failure is remediated as that of its action.
		return ctrl.Result{}, r.actionFailed(ctx, obj, h, a.Revision, install, cur.Version-1, fmt.Errorf("revision %d: %w", cur.Version, err))
	}
	conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.SucceededReason, "release %s at revision %d confirmed healthy", cur.Name, cur.Version)
	ignoredTestFailure(obj, conditions.IsFalse(obj, helmv1.TestSuccessCondition))
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// runTests runs the chart's test hooks (those of spec.test.filters) when spec.test.enable; a
// failure is an error unless the install's (or upgrade's) remediation.ignoreTestFailures, or
// else test.ignoreFailures, says to ignore it.
func (r *HelmReleaseReconciler) runTests(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, install bool, revision string) error {
	t := obj.Spec.Test
	if t == nil || !t.Enable {
		conditions.Delete(obj, helmv1.TestSuccessCondition)
		return nil
	}
	if err := h.Test(plumbrelease.TestTimeout(obj), plumbrelease.TestFilters(obj)); err != nil {
		conditions.MarkFalse(obj, helmv1.TestSuccessCondition, helmv1.TestFailedReason, "tests failed: %v", err)
		r.event(ctx, obj, revision, corev1.EventTypeWarning, helmv1.TestFailedReason, "tests of release %s failed: %v", obj.GetReleaseName(), err)
		if plumbrelease.IgnoreTestFailures(obj, install) {
			return nil
		}
		return fmt.Errorf("tests failed: %w", err)
	}
	conditions.MarkTrue(obj, helmv1.TestSuccessCondition, helmv1.TestSucceededReason, "tests of release %s passed", obj.GetReleaseName())
	r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.TestSucceededReason, "tests of release %s passed", obj.GetReleaseName())
	return nil
}

// ignoredTestFailure settles Ready, just marked True, for a revision whose tests failed (failed)
// and were ignored, as Flux summarizes it: with spec.test.ignoreFailures Ready stays True and
// its message notes the failure; with only the action's remediation.ignoreTestFailures the
// release is left as it is (no remediation, no retry) but Ready is False with reason TestFailed,
// until the next release or a spec that ignores the failures.
func ignoredTestFailure(obj *helmv1.HelmRelease, failed bool) {
	t := obj.Spec.Test
	if !failed || t == nil || !t.Enable {
		return
	}
	tests := conditions.GetMessage(obj, helmv1.TestSuccessCondition)
	if tests == "" {
		tests = "tests failed"
	}
	if t.IgnoreFailures {
		ready := conditions.Get(obj, meta.ReadyCondition)
		conditions.MarkTrue(obj, meta.ReadyCondition, ready.Reason, "%s; %s (ignored: spec.test.ignoreFailures)", ready.Message, tests)
		return
	}
	markFailed(obj, helmv1.TestFailedReason, "%s; remediation.ignoreTestFailures leaves the release as it is, set spec.test.ignoreFailures to count it Ready", tests)
}
