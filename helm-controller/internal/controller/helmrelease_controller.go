// Package controller holds helm-controller's reconciler.
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
	"github.com/plumb-dev/plumb/shared/objcache"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/refwatch"
	"github.com/plumb-dev/plumb/shared/status"
)

// +kubebuilder:rbac:groups=helm.plumb.dev,resources=helmreleases,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=helm.plumb.dev,resources=helmreleases/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=helm.plumb.dev,resources=helmreleases/finalizers,verbs=update
// +kubebuilder:rbac:groups=source.plumb.dev,resources=*,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=*,resources=*,verbs=*
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// HelmReleaseReconciler installs and upgrades charts with the Helm SDK.
type HelmReleaseReconciler struct {
	// Client reads HelmReleases from the cache and patches status; sources and dependencies are
	// read as unstructured, from the API server.
	client.Client
	// APIReader reads ConfigMaps and Secrets of valuesFrom, uncached.
	APIReader client.Reader
	// Config is the controller's own REST config; impersonating ones derive from it.
	Config *rest.Config
	Events recorder.EventRecorder
	// ControllerName is the field manager of status patches.
	ControllerName string
	// Fetcher downloads chart artifacts (digest-checked).
	Fetcher *artifact.Fetcher
	// DefaultServiceAccount is impersonated when a HelmRelease names none.
	DefaultServiceAccount string
	// RequeueDependency is the wait before checking a source or dependency that is not ready.
	RequeueDependency time.Duration
	// NoCrossNamespaceRefs refuses chartRef and dependsOn in other namespaces.
	NoCrossNamespaceRefs bool
	// KMSWorkloadIdentity lets SOPS keys of AWS KMS, GCP KMS and Azure Key Vault whose
	// credentials the decryption Secret lacks use the controller's own cloud identity.
	KMSWorkloadIdentity bool
	// Clusters obtains the credentials of spec.kubeConfig.configMapRef (nil: no token cache and
	// no serviceAccountName in the ConfigMap).
	Clusters *kubeconfig.Clusters

	clusters sync.Map // identity → *cluster
	charts   chartCache
	watches  *refwatch.Watcher
	// storage watches the metadata of Helm's release Secrets; stored is what the last
	// reconcile of each HelmRelease read of them.
	storage *storageWatch
	stored  storedReleases
	// objects watches the objects Helm made in this cluster (their metadata; the status too of
	// workloads), for drift detection and health waits; drifts is where each HelmRelease's
	// objects were last found in sync.
	objects *objcache.Cache
	drifts  driftRecords
}

// Reconcile follows the house shape: get, defer the one status patch, finalize or set up, skip
// when suspended, validate, then the ordered steps.
func (r *HelmReleaseReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &helmv1.HelmRelease{}
	if found, err := status.Get(ctx, r.Client, helmv1.HelmReleaseKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	// Values read from Secrets are gathered here as they are read, and masked in every
	// condition message, event and log line of this reconcile (Helm and API server errors may
	// quote them: a schema's pattern, a template's fail).
	ctx = context.WithValue(ctx, secretValuesKey{}, &secretValues{})
	patcher := status.NewPatcher(r.Client, obj)
	ctx = context.WithValue(ctx, reconcileStateKey{}, &reconcileState{patcher: patcher})
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		r.finalizeStatus(ctx, obj, patcher, &result, &retErr)
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, obj)
	}
	controllerutil.AddFinalizer(obj, helmv1.Finalizer)
	if obj.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if err := r.validate(obj); err != nil {
		return ctrl.Result{}, r.stall(ctx, obj, helmv1.InvalidSpecReason, err.Error())
	}
	if refused, err := r.refusedKinds(ctx, obj); err != nil || refused != "" {
		if err != nil {
			return ctrl.Result{}, r.failure(ctx, obj, "", helmv1.InvalidSpecReason, err)
		}
		return ctrl.Result{}, r.stall(ctx, obj, helmv1.InvalidSpecReason, refused)
	}
	return r.reconcile(ctx, obj)
}

// validate checks the references of the spec that the schema cannot: a spec change alone
// fixes them.
func (r *HelmReleaseReconciler) validate(obj *helmv1.HelmRelease) error {
	if err := validateIgnoreRules(obj.Spec.DriftDetection); err != nil {
		return err
	}
	_, key, err := chartKey(obj)
	if err != nil {
		return err
	}
	field := "spec.chartRef"
	if obj.Spec.Chart != nil {
		field = "spec.chart.spec.sourceRef"
		if v := obj.Spec.Chart.Spec.SourceRef.APIVersion; v != "" && v != defaultSourceAPIVersion {
			return fmt.Errorf("spec.chart.spec.sourceRef.apiVersion %q: charts come from %s sources (a Flux manifest's source.toolkit.fluxcd.io needs its apiVersion changed)", v, defaultSourceAPIVersion)
		}
	}
	if r.NoCrossNamespaceRefs && key.Namespace != obj.Namespace {
		return fmt.Errorf("%s in namespace %s: this controller refuses references to other namespaces (--no-cross-namespace-refs)", field, key.Namespace)
	}
	deps, err := dependencies(obj)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if r.NoCrossNamespaceRefs && d.Key.Namespace != obj.Namespace {
			return fmt.Errorf("spec.dependsOn %s: this controller refuses references to other namespaces (--no-cross-namespace-refs)", d.Key)
		}
	}
	return nil
}

// reconcile runs the ordered steps: dependencies, chart, values, then the Helm action the
// release needs.
func (r *HelmReleaseReconciler) reconcile(ctx context.Context, obj *helmv1.HelmRelease) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		conditions.MarkReconciling(obj, helmv1.ProgressingReason, "reconciling generation %d", obj.Generation)
	}
	if err := r.checkHealthExprs(ctx, obj); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.checkDependencies(ctx, obj); err != nil {
		return ctrl.Result{}, err
	}
	a, load, err := r.chart(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	vals, digest, err := r.values(ctx, obj, a)
	if err != nil {
		return ctrl.Result{}, err
	}
	// Not stalled on an unusable kubeconfig: Secrets are not watched, and a fixed Secret is
	// seen at the next retry.
	h, err := r.helm(ctx, obj)
	if errors.Is(err, errInvalidKubeConfig) {
		return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InvalidSpecReason, err)
	}
	if err != nil {
		return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.ClusterNotReadyReason, err)
	}
	return r.act(ctx, obj, h, a, load, vals, digest)
}

// act brings the Helm release to the chart and values: install, reinstall, upgrade, adoption
// of a deployed release made outside Plumb, or (when it is up to date) a health recheck or
// drift detection.
func (r *HelmReleaseReconciler) act(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, a *meta.Artifact,
	load func() (*chart.Chart, error), vals map[string]any, digest string) (ctrl.Result, error) {
	name := obj.GetReleaseName()
	chartDigest := plumbrelease.ChartDigest(a.Digest)
	if cur, history, ok := r.stored.upToDate(r.storage, obj, digest, chartDigest); ok {
		// The storage is as the last reconcile read it, and needs no action: not read again.
		obj.Status.History = history
		return r.upToDate(ctx, obj, cur, a)
	}
	hist, err := h.History()
	if err != nil {
		r.stored.forget(obj)
		return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InstallFailedReason, fmt.Errorf("reading release %s: %w", name, err))
	}
	r.stored.remember(obj, h.StoredFingerprint(), hist)
	cur := plumbrelease.Newest(hist)
	// status.history comes from storage: read again after an action, from hist otherwise.
	acted := true
	defer func() {
		if acted {
			r.recordHistory(h, obj)
		} else {
			obj.Status.History = plumbrelease.Snapshots(hist, obj.GetMaxHistory())
		}
	}()

	if cur != nil {
		if other := plumbrelease.OwnerOf(cur); other != "" && other != plumbrelease.OwnerID(obj) {
			return ctrl.Result{}, r.stall(ctx, obj, helmv1.InvalidSpecReason, fmt.Sprintf(
				"Helm release %s in namespace %s belongs to HelmRelease %s; set another releaseName or storageNamespace", name, obj.GetStorageNamespace(), other))
		}
	}
	if cur != nil && cur.Info.Status.IsPending() {
		// Left pending by a controller that stopped mid-action: nothing is running it now (one
		// leader reconciles), so it is marked failed and the action below goes ahead.
		log.FromContext(ctx).Info("recovering a release left pending", "release", name, "status", cur.Info.Status.String())
		if err := h.Recover(cur); err != nil {
			return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.UpgradeFailedReason, fmt.Errorf("recovering pending release %s: %w", name, err))
		}
	}

	switch {
	case cur == nil || cur.Info.Status == release.StatusUninstalled:
		if cur == nil {
			if found, err := r.storedInFluxDefault(ctx, obj); err != nil || found {
				if err != nil {
					return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InstallFailedReason, fmt.Errorf("looking for release %s in namespace %s: %w", name, obj.Namespace, err))
				}
				return ctrl.Result{}, r.stall(ctx, obj, helmv1.InvalidSpecReason, fmt.Sprintf(
					"Helm release %s is stored in namespace %s (Flux's default storage namespace), not in the target namespace %s (Plumb's default): set spec.storageNamespace: %s to adopt it",
					name, obj.Namespace, obj.GetTargetNamespace(), obj.Namespace))
			}
		}
		ch, err := load()
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.install(ctx, obj, h, ch, vals, a, cur != nil)
	case cur.Info.Status == release.StatusFailed && !plumbrelease.EverDeployed(hist):
		// A first install that failed and was kept: it cannot be upgraded; it is uninstalled
		// and installed again, within the install retries.
		retry, _ := plumbrelease.RetryOnFailure(obj, true)
		if !retry && plumbrelease.Exhausted(obj.Status.InstallFailures, plumbrelease.InstallRemediation(obj)) {
			return r.retriesExhausted(ctx, obj, a.Revision, "install", obj.Status.InstallFailures)
		}
		ch, err := load()
		if err != nil {
			return ctrl.Result{}, err
		}
		if retry {
			// RetryOnFailure keeps the failed install and tries again with an upgrade.
			return r.upgrade(ctx, obj, h, ch, vals, a, true)
		}
		if err := h.Uninstall(plumbrelease.UninstallOptionsFor(obj)); err != nil {
			return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InstallFailedReason, fmt.Errorf("removing the failed install of %s: %w", name, err))
		}
		return r.install(ctx, obj, h, ch, vals, a, true)
	case cur.Info.Status == release.StatusDeployed &&
		plumbrelease.UpToDate(cur, digest, plumbrelease.PostRenderersDigest(obj), chartDigest):
		if cur.Labels[plumbrelease.HealthyLabel] == "false" {
			// The controller stopped during this revision's health wait or tests: check again.
			return r.recheck(ctx, obj, h, cur, a)
		}
		acted = false
		return r.upToDate(ctx, obj, cur, a)
	default:
		ch, err := load()
		if err != nil {
			return ctrl.Result{}, err
		}
		if cur.Info.Status == release.StatusDeployed && plumbrelease.OwnerOf(cur) == "" {
			if adopted, res, err := r.adopt(ctx, obj, h, cur, ch, vals, digest, a.Revision, plumbrelease.ChartDigest(a.Digest)); adopted || err != nil {
				return res, err
			}
		}
		if reinstall(obj, cur, ch) {
			// upgrade.chartNameChangeStrategy Reinstall (the default), as Flux: another chart's
			// release is uninstalled, then installed from the new chart.
			log.FromContext(ctx).Info("reinstalling for a new chart name", "release", name, "from", cur.Chart.Metadata.Name, "to", ch.Name())
			if err := h.Uninstall(plumbrelease.UninstallOptionsFor(obj)); err != nil {
				return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.UpgradeFailedReason, fmt.Errorf("uninstalling release %s of chart %s for chart %s: %w", name, cur.Chart.Metadata.Name, ch.Name(), err))
			}
			return r.install(ctx, obj, h, ch, vals, a, true)
		}
		return r.upgrade(ctx, obj, h, ch, vals, a, false)
	}
}

// upToDate finishes the reconcile of a release at the chart and values, deployed and
// confirmed healthy: drift detection, then Ready.
func (r *HelmReleaseReconciler) upToDate(ctx context.Context, obj *helmv1.HelmRelease, cur *release.Release, a *meta.Artifact) (ctrl.Result, error) {
	if err := r.drift(ctx, obj, cur, a.Revision); err != nil {
		return ctrl.Result{}, err
	}
	conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.SucceededReason, "release %s at revision %d: chart %s %s", cur.Name, cur.Version, cur.Chart.Metadata.Name, cur.Chart.Metadata.Version)
	ignoredTestFailure(obj, plumbrelease.TestResult(cur) == "failed")
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// recordHistory writes status.history from Helm's storage, and keeps what it read for the
// next reconcile.
func (r *HelmReleaseReconciler) recordHistory(h plumbrelease.Actions, obj *helmv1.HelmRelease) {
	hist, err := h.History()
	if err != nil {
		r.stored.forget(obj)
		return
	}
	r.stored.remember(obj, h.StoredFingerprint(), hist)
	if len(hist) == 0 {
		obj.Status.History = nil
		return
	}
	obj.Status.History = plumbrelease.Snapshots(hist, obj.GetMaxHistory())
}

// reinstall tells whether the chart's name differs from the current release's and
// spec.upgrade.chartNameChangeStrategy (default Reinstall) says to uninstall and install.
func reinstall(obj *helmv1.HelmRelease, cur *release.Release, ch *chart.Chart) bool {
	if cur == nil || cur.Chart == nil || cur.Chart.Metadata == nil || cur.Chart.Metadata.Name == ch.Name() {
		return false
	}
	return obj.Spec.Upgrade == nil || obj.Spec.Upgrade.ChartNameChangeStrategy != helmv1.ChartNameChangeInPlaceUpdate
}
