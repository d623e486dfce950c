package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/redact"
)

// adopt takes over cur, a deployed release that no HelmRelease owns (made by Flux's
// helm-controller or with helm install), when the chart, the values and the rendered manifest
// and hooks are those the HelmRelease would deploy: the stored revision gets Plumb's labels,
// with no new revision and nothing applied. When it cannot, it says why (a log line and an
// event) and returns false: the caller upgrades as usual.
func (r *HelmReleaseReconciler) adopt(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, cur *release.Release,
	ch *chart.Chart, vals map[string]any, digest, revision, chartDigest string) (bool, ctrl.Result, error) {
	why, err := r.adoptionBlocker(obj, h, cur, ch, vals, digest)
	if err != nil {
		why = err.Error()
	}
	if why != "" {
		// A render error may quote values, some read from Secrets.
		why = redact.String(why, secretsOf(ctx))
		log.FromContext(ctx).Info("not adopting the release as it is", "release", cur.Name, "revision", cur.Version, "reason", why)
		r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.ProgressingReason,
			"release %s revision %d, made outside Plumb, is not adopted as it is (%s): upgrading it", cur.Name, cur.Version, why)
		return false, ctrl.Result{}, nil
	}

	labels := plumbrelease.Labels(obj, chartDigest)
	// Its health is not waited for: it is the release already running.
	labels[plumbrelease.HealthyLabel] = "true"
	if err := h.Adopt(cur, labels); err != nil {
		return true, ctrl.Result{}, r.failure(ctx, obj, revision, helmv1.UpgradeFailedReason,
			fmt.Errorf("adopting release %s revision %d: writing its labels: %w", cur.Name, cur.Version, err))
	}
	obj.Status.InstallFailures, obj.Status.UpgradeFailures = 0, 0
	chartName, chartVersion := cur.Chart.Metadata.Name, cur.Chart.Metadata.Version
	conditions.MarkTrue(obj, helmv1.ReleasedCondition, helmv1.AdoptSucceededReason,
		"adopted revision %d of chart %s %s, made outside Plumb", cur.Version, chartName, chartVersion)
	conditions.Delete(obj, helmv1.RemediatedCondition)
	conditions.Delete(obj, helmv1.TestSuccessCondition)
	r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.AdoptSucceededReason,
		"adopted release %s revision %d, chart %s %s: no new revision", cur.Name, cur.Version, chartName, chartVersion)
	if err := r.drift(ctx, obj, cur, revision); err != nil {
		return true, ctrl.Result{}, err
	}
	conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.AdoptSucceededReason,
		"adopted release %s at revision %d: chart %s %s, no new revision", cur.Name, cur.Version, chartName, chartVersion)
	return true, ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// adoptionBlocker says why cur is not what the HelmRelease would deploy, "" when it is:
// the chart's name and version, the values, then the manifest and hooks rendered as cur was
// (its name, namespace and revision) with the HelmRelease's post-renderers.
func (r *HelmReleaseReconciler) adoptionBlocker(obj *helmv1.HelmRelease, h plumbrelease.Actions, cur *release.Release,
	ch *chart.Chart, vals map[string]any, digest string) (string, error) {
	if why := plumbrelease.AdoptionBlocker(cur, ch, digest); why != "" {
		return why, nil
	}
	opts := plumbrelease.UpgradeOptionsFor(obj)
	rendered, err := h.Render(ch, vals, cur, plumbrelease.RenderOptions{SkipSchemaValidation: opts.SkipSchemaValidation, PostRenderer: opts.PostRenderer})
	if err != nil {
		return fmt.Sprintf("rendering chart %s %s: %v", ch.Name(), ch.Metadata.Version, err), nil
	}
	return plumbrelease.RenderedDifference(cur, rendered)
}

// storedInFluxDefault looks, before an install, for the release in the HelmRelease's own
// namespace when the storage namespace is left to its default and the target namespace
// differs: Plumb's default storage namespace is the target namespace, Flux's the
// HelmRelease's, so a release Flux made with spec.targetNamespace is kept there. Installing
// would make a second release of the same objects; the caller stalls and says which
// storageNamespace adopts it. A storage the identity may not read counts as empty.
func (r *HelmReleaseReconciler) storedInFluxDefault(ctx context.Context, obj *helmv1.HelmRelease) (bool, error) {
	if obj.Spec.StorageNamespace != "" || obj.GetStorageNamespace() == obj.Namespace {
		return false, nil
	}
	c, err := r.cluster(ctx, obj)
	if err != nil {
		return false, err
	}
	h, err := plumbrelease.NewHelm(c, plumbrelease.Target{Name: obj.GetReleaseName(), Namespace: obj.GetTargetNamespace(), StorageNamespace: obj.Namespace},
		func(string, ...any) {})
	if err != nil {
		return false, err
	}
	rls, err := h.Last()
	if apierrors.IsForbidden(err) {
		return false, nil
	}
	return rls != nil, err
}
