// Package controller holds helm-controller's reconciler.
package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	"github.com/fluxcd/pkg/ssa"
	"golang.org/x/sync/singleflight"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	kustypes "sigs.k8s.io/kustomize/api/types"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/health"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/refwatch"
)

// +kubebuilder:rbac:groups=helm.plumb.dev,resources=helmreleases,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=helm.plumb.dev,resources=helmreleases/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=helm.plumb.dev,resources=helmreleases/finalizers,verbs=update
// +kubebuilder:rbac:groups=source.plumb.dev,resources=*,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=*,resources=*,verbs=*
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// defaultSourceAPIVersion is assumed for a chartRef without apiVersion.
const defaultSourceAPIVersion = "source.plumb.dev/v1beta1"

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

	clusters sync.Map // identity → *plumbrelease.Cluster
	charts   chartCache
	watches  *refwatch.Watcher
}

// Indexes of HelmReleases by what they refer to, as Kind/namespace/name.
const (
	chartRefIndex   = ".spec.chartRef"
	dependencyIndex = ".spec.dependsOn"
)

// chartCache keeps chart packages by artifact digest: a thousand releases of one chart download
// it once. Each action loads its own copy: Helm changes the chart it is given (it drops
// disabled subcharts), so a loaded chart is never shared.
type chartCache struct {
	mu     sync.Mutex
	m      map[string][]byte
	order  []string
	flight singleflight.Group
}

const maxCachedCharts = 32

// SetupWithManager registers the reconciler: it runs on spec changes, reconcile and reset
// requests, and (once a reconcile has met the kind, see shared/refwatch) when the chart source
// publishes a new artifact or a dependency turns Ready.
func (r *HelmReleaseReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, concurrent int) error {
	if r.RequeueDependency == 0 {
		r.RequeueDependency = 5 * time.Second
	}
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &helmv1.HelmRelease{}, chartRefIndex, func(o client.Object) []string {
		hr := o.(*helmv1.HelmRelease)
		if hr.Spec.Chart == nil && hr.Spec.ChartRef == nil {
			return nil
		}
		gvk, key, _ := chartKey(hr)
		return []string{refwatch.Key(gvk.Kind, key.Namespace, key.Name)}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &helmv1.HelmRelease{}, dependencyIndex, func(o client.Object) []string {
		hr := o.(*helmv1.HelmRelease)
		var keys []string
		for _, d := range hr.Spec.DependsOn {
			gvk, key := dependencyKey(hr, d)
			keys = append(keys, refwatch.Key(gvk.Kind, key.Namespace, key.Name))
		}
		return keys
	}); err != nil {
		return err
	}
	referrers := refwatch.Referrers(r.Client, func() client.ObjectList { return &helmv1.HelmReleaseList{} }, chartRefIndex, dependencyIndex)
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&helmv1.HelmRelease{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}, plumbreconcile.Requested{Annotation: helmv1.ResetAtAnnotation}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrent}).
		Build(r)
	if err != nil {
		return err
	}
	r.watches = refwatch.New(c, mgr.GetCache(), mgr.GetRESTMapper(), referrers)
	return nil
}

// dependencyKey resolves a dependsOn entry's defaults.
func dependencyKey(hr *helmv1.HelmRelease, d helmv1.DependencyReference) (schema.GroupVersionKind, types.NamespacedName) {
	apiVersion, kind, ns := d.APIVersion, d.Kind, d.Namespace
	if apiVersion == "" {
		apiVersion = helmv1.GroupVersion.String()
	}
	if kind == "" {
		kind = helmv1.HelmReleaseKind
	}
	if ns == "" {
		ns = hr.Namespace
	}
	gv, _ := schema.ParseGroupVersion(apiVersion)
	return gv.WithKind(kind), types.NamespacedName{Namespace: ns, Name: d.Name}
}

// Reconcile follows the house shape: get, defer the one status patch, finalize or set up, skip
// when suspended, then the ordered steps.
func (r *HelmReleaseReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &helmv1.HelmRelease{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Values read from Secrets are gathered here as they are read, and masked in every
	// condition message, event and log line of this reconcile (Helm and API server errors may
	// quote them: a schema's pattern, a template's fail).
	ctx = context.WithValue(ctx, secretValuesKey{}, &secretValues{})
	patcher := patch.NewSerialPatcher(obj, r.Client)
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
	return r.reconcile(ctx, obj)
}

func (r *HelmReleaseReconciler) reconcile(ctx context.Context, obj *helmv1.HelmRelease) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		conditions.MarkReconciling(obj, helmv1.ProgressingReason, "reconciling generation %d", obj.Generation)
	}
	if err := r.checkDependencies(ctx, obj); err != nil {
		return ctrl.Result{}, err
	}
	a, err := r.chartArtifact(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	data, err := r.chartBytes(ctx, a)
	if err != nil {
		return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.ArtifactFailedReason, fmt.Errorf("chart artifact %s: %w", a.Revision, err))
	}
	// The chart is loaded only for an action: a release up to date needs none.
	load := func() (*chart.Chart, error) {
		ch, err := loadChart(data)
		if err != nil {
			return nil, r.failure(ctx, obj, a.Revision, helmv1.ArtifactFailedReason, fmt.Errorf("chart artifact %s: %w", a.Revision, err))
		}
		return ch, nil
	}
	vals, versions, err := r.values(ctx, obj)
	if errors.Is(err, errSpecValues) {
		return ctrl.Result{}, r.stall(ctx, obj, helmv1.InvalidSpecReason, err.Error())
	}
	if err != nil {
		return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.ValuesFailedReason, err)
	}
	// digest compares values with the release's; checksum is the one to publish.
	digest, checksum := plumbrelease.Digest(vals), plumbrelease.MaskedDigest(vals, secretsOf(ctx), versions)

	// A change of chart, values or spec, or the reset annotation, starts the failure counts again.
	if obj.Status.LastAttemptedRevision != a.Revision || obj.Status.LastAttemptedValuesChecksum != checksum || obj.Status.LastAttemptedGeneration != obj.Generation {
		obj.Status.InstallFailures, obj.Status.UpgradeFailures = 0, 0
	}
	if v, ok := obj.GetAnnotations()[helmv1.ResetAtAnnotation]; ok && v != obj.Status.LastHandledResetAt {
		obj.Status.InstallFailures, obj.Status.UpgradeFailures = 0, 0
		obj.Status.LastHandledResetAt = v
	}
	obj.Status.LastAttemptedRevision, obj.Status.LastAttemptedValuesChecksum, obj.Status.LastAttemptedGeneration = a.Revision, checksum, obj.Generation

	// Not stalled on an unusable kubeconfig: Secrets are not watched, and a fixed Secret is
	// seen at the next retry.
	cfg, err := r.actionConfig(ctx, obj)
	if errors.Is(err, errInvalidKubeConfig) {
		return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InvalidSpecReason, err)
	}
	if err != nil {
		return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.ClusterNotReadyReason, err)
	}
	name := obj.GetReleaseName()
	hist, err := cfg.Releases.History(name)
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InstallFailedReason, fmt.Errorf("reading release %s: %w", name, err))
	}
	cur := newest(hist)
	// status.history comes from storage: read again after an action, from hist otherwise.
	acted := true
	defer func() {
		if acted {
			r.recordHistory(cfg, obj, name)
		} else {
			obj.Status.History = snapshots(hist, obj.GetMaxHistory())
		}
	}()

	if cur != nil {
		if other := ownerOf(cur); other != "" && other != ownerID(obj) {
			return ctrl.Result{}, r.stall(ctx, obj, helmv1.InvalidSpecReason, fmt.Sprintf(
				"Helm release %s in namespace %s belongs to HelmRelease %s; set another releaseName or storageNamespace", name, obj.GetStorageNamespace(), other))
		}
	}
	if cur != nil && cur.Info.Status.IsPending() {
		// Left pending by a controller that stopped mid-action: nothing is running it now (one
		// leader reconciles), so it is marked failed and the action below goes ahead.
		log.FromContext(ctx).Info("recovering a release left pending", "release", name, "status", cur.Info.Status.String())
		cur.SetStatus(release.StatusFailed, fmt.Sprintf("left %s by a stopped controller; recovered by helm-controller", cur.Info.Status))
		if err := cfg.Releases.Update(cur); err != nil {
			return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.UpgradeFailedReason, fmt.Errorf("recovering pending release %s: %w", name, err))
		}
	}

	switch {
	case cur == nil || cur.Info.Status == release.StatusUninstalled:
		ch, err := load()
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.install(ctx, obj, cfg, ch, vals, a, cur != nil)
	case cur.Info.Status == release.StatusFailed && !everDeployed(hist):
		// A first install that failed and was kept: it cannot be upgraded; it is uninstalled
		// and installed again, within the install retries.
		if exhausted(obj.Status.InstallFailures, installRemediation(obj)) {
			return r.retriesExhausted(ctx, obj, a.Revision, "install", obj.Status.InstallFailures)
		}
		ch, err := load()
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := r.uninstall(obj, cfg); err != nil {
			return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InstallFailedReason, fmt.Errorf("removing the failed install of %s: %w", name, err))
		}
		return r.install(ctx, obj, cfg, ch, vals, a, true)
	case cur.Info.Status == release.StatusDeployed && upToDate(cur, digest, postRenderersDigest(obj), chartDigest(a)):
		if cur.Labels[healthyLabel] == "false" {
			// The controller stopped during this revision's health wait or tests: check again.
			return r.recheck(ctx, obj, cfg, cur, a)
		}
		acted = false
		if err := r.drift(ctx, obj, cur, a.Revision); err != nil {
			return ctrl.Result{}, err
		}
		conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.SucceededReason, "release %s at revision %d: chart %s %s", name, cur.Version, cur.Chart.Metadata.Name, cur.Chart.Metadata.Version)
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
	default:
		ch, err := load()
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.upgrade(ctx, obj, cfg, ch, vals, a)
	}
}

// upToDate says whether the deployed release was made from this chart artifact (the label
// holds its digest, so name and version follow) with these values and post-renderers.
func upToDate(cur *release.Release, digest, postRenderers, chartDigest string) bool {
	return cur.Chart != nil && cur.Chart.Metadata != nil && plumbrelease.Digest(cur.Config) == digest &&
		cur.Labels[postRenderersLabel] == postRenderers && cur.Labels[chartDigestLabel] == chartDigest
}

// Labels helm-controller puts on the Helm releases it makes.
const (
	// postRenderersLabel records the post-renderers a release was made with, so that a change
	// of them upgrades it.
	postRenderersLabel = "helm.plumb.dev/post-renderers"
	// chartDigestLabel records the chart artifact (short digest), so that new content under
	// the same version (values files, a re-pushed chart) upgrades.
	chartDigestLabel = "helm.plumb.dev/chart-digest"
	// valuesDigestLabel records the values' masked digest (release.DigestLabel), for
	// status.history.
	valuesDigestLabel = "helm.plumb.dev/values-digest"
	// ownerNamespaceLabel and ownerNameLabel name the HelmRelease that owns a release.
	ownerNamespaceLabel = "helm.plumb.dev/namespace"
	ownerNameLabel      = "helm.plumb.dev/name"
)

func chartDigest(a *meta.Artifact) string {
	d := strings.TrimPrefix(a.Digest, "sha256:")
	if len(d) > 16 {
		d = d[:16]
	}
	return d
}

func ownerID(obj *helmv1.HelmRelease) string { return obj.Namespace + "/" + obj.Name }

// ownerOf names the HelmRelease that owns a Helm release, or "" for a release made otherwise
// (by hand, with helm install): such a release is adopted.
func ownerOf(rls *release.Release) string {
	if rls.Labels[ownerNameLabel] == "" {
		return ""
	}
	return rls.Labels[ownerNamespaceLabel] + "/" + rls.Labels[ownerNameLabel]
}

// releaseLabels are the labels of every install and upgrade.
func releaseLabels(obj *helmv1.HelmRelease, a *meta.Artifact) map[string]string {
	return map[string]string{
		valuesDigestLabel:   plumbrelease.DigestLabel(obj.Status.LastAttemptedValuesChecksum),
		postRenderersLabel:  postRenderersDigest(obj),
		chartDigestLabel:    chartDigest(a),
		ownerNamespaceLabel: obj.Namespace,
		ownerNameLabel:      obj.Name,
		healthyLabel:        "false",
	}
}

// postRenderersDigest is a label value for spec.postRenderers: "none", or a short digest.
func postRenderersDigest(obj *helmv1.HelmRelease) string {
	if len(obj.Spec.PostRenderers) == 0 {
		return "none"
	}
	b, _ := json.Marshal(obj.Spec.PostRenderers)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// postRenderer makes the Helm post-renderer of spec.postRenderers, or nil.
func postRenderer(obj *helmv1.HelmRelease) *plumbrelease.Kustomizer {
	if len(obj.Spec.PostRenderers) == 0 {
		return nil
	}
	k := &plumbrelease.Kustomizer{}
	for _, pr := range obj.Spec.PostRenderers {
		if pr.Kustomize == nil {
			continue
		}
		for _, p := range pr.Kustomize.Patches {
			kp := plumbrelease.KustomizePatch{Patch: p.Patch}
			if t := p.Target; t != nil {
				kp.Target = plumbrelease.Selector(t.Group, t.Version, t.Kind, t.Name, t.Namespace, t.LabelSelector, t.AnnotationSelector)
			}
			k.Patches = append(k.Patches, kp)
		}
		for _, i := range pr.Kustomize.Images {
			k.Images = append(k.Images, kustypes.Image{Name: i.Name, NewName: i.NewName, NewTag: i.NewTag, Digest: i.Digest})
		}
	}
	return k
}

// exhausted says whether failures have used up the retries (-1: never).
func exhausted(failures int64, rem *helmv1.Remediation) bool {
	retries := int64(0)
	if rem != nil {
		retries = rem.Retries
	}
	return failures > 0 && retries >= 0 && failures > retries
}

func installRemediation(obj *helmv1.HelmRelease) *helmv1.Remediation {
	if obj.Spec.Install != nil {
		return obj.Spec.Install.Remediation
	}
	return nil
}

func upgradeRemediation(obj *helmv1.HelmRelease) *helmv1.Remediation {
	if obj.Spec.Upgrade != nil {
		return obj.Spec.Upgrade.Remediation
	}
	return nil
}

// remediateLast says whether the last allowed failure is remediated: as set, or by default for
// installs always and for upgrades when retries are allowed.
func remediateLast(rem *helmv1.Remediation, install bool) bool {
	if rem != nil && rem.RemediateLastFailure != nil {
		return *rem.RemediateLastFailure
	}
	return install || (rem != nil && rem.Retries != 0)
}

// everDeployed says whether a release's history has a revision that was deployed.
func everDeployed(hist []*release.Release) bool {
	for _, h := range hist {
		if h.Info != nil && (h.Info.Status == release.StatusDeployed || h.Info.Status == release.StatusSuperseded) {
			return true
		}
	}
	return false
}

// newest is the highest revision of a release's history, nil when there is none.
func newest(hist []*release.Release) *release.Release {
	var out *release.Release
	for _, h := range hist {
		if out == nil || h.Version > out.Version {
			out = h
		}
	}
	return out
}

// latestVersion is the newest revision number in storage, 0 when there is none.
func latestVersion(cfg *action.Configuration, name string) int {
	if rls, err := cfg.Releases.Last(name); err == nil {
		return rls.Version
	}
	return 0
}

func (r *HelmReleaseReconciler) install(ctx context.Context, obj *helmv1.HelmRelease, cfg *action.Configuration, ch *chart.Chart, vals map[string]any, a *meta.Artifact, replace bool) (ctrl.Result, error) {
	in := obj.Spec.Install
	if exhausted(obj.Status.InstallFailures, installRemediation(obj)) {
		return r.retriesExhausted(ctx, obj, a.Revision, "install", obj.Status.InstallFailures)
	}
	act := action.NewInstall(cfg)
	act.ReleaseName, act.Namespace, act.Replace = obj.GetReleaseName(), obj.GetTargetNamespace(), replace
	// The API server validates every object; Helm's own check would download and parse the
	// cluster's whole OpenAPI document on every action.
	act.DisableOpenAPIValidation = true
	act.Labels = releaseLabels(obj, a)
	if pr := postRenderer(obj); pr != nil {
		act.PostRenderer = pr
	}
	wait, timeout := waitSettings(obj, true)
	act.Timeout = timeout
	if in != nil {
		act.SkipCRDs = in.CRDs == helmv1.CRDsSkip || in.CRDs == helmv1.CRDsCreateReplace
	}
	if in != nil && in.CRDs == helmv1.CRDsCreateReplace {
		if err := r.applyCRDs(ctx, obj, ch, true); err != nil {
			return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.InstallFailedReason, fmt.Errorf("CRDs of chart %s: %w", ch.Name(), err))
		}
	}
	conditions.MarkReconciling(obj, helmv1.ProgressingReason, "installing chart %s %s", ch.Name(), ch.Metadata.Version)
	before := latestVersion(cfg, obj.GetReleaseName())
	rls, err := act.RunWithContext(ctx, ch, vals)
	if err == nil {
		err = r.confirm(ctx, obj, cfg, rls, wait, act.Timeout, a.Revision)
	}
	if err != nil {
		return ctrl.Result{}, r.actionFailed(ctx, obj, cfg, a.Revision, true, before, fmt.Errorf("install of chart %s %s failed: %w", ch.Name(), ch.Metadata.Version, err))
	}
	obj.Status.InstallFailures = 0
	conditions.MarkTrue(obj, helmv1.ReleasedCondition, helmv1.InstallSucceededReason, "installed chart %s %s as revision %d", ch.Name(), ch.Metadata.Version, rls.Version)
	conditions.Delete(obj, helmv1.RemediatedCondition)
	conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.InstallSucceededReason, "installed release %s at revision %d: chart %s %s", rls.Name, rls.Version, ch.Name(), ch.Metadata.Version)
	r.event(ctx, obj, a.Revision, corev1.EventTypeNormal, helmv1.InstallSucceededReason, "installed release %s revision %d, chart %s %s", rls.Name, rls.Version, ch.Name(), ch.Metadata.Version)
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

func (r *HelmReleaseReconciler) upgrade(ctx context.Context, obj *helmv1.HelmRelease, cfg *action.Configuration, ch *chart.Chart, vals map[string]any, a *meta.Artifact) (ctrl.Result, error) {
	up := obj.Spec.Upgrade
	if exhausted(obj.Status.UpgradeFailures, upgradeRemediation(obj)) {
		return r.retriesExhausted(ctx, obj, a.Revision, "upgrade", obj.Status.UpgradeFailures)
	}
	act := action.NewUpgrade(cfg)
	act.Namespace, act.MaxHistory = obj.GetTargetNamespace(), obj.GetMaxHistory()
	// The values are the spec's, not merged with the last release's (empty values would
	// otherwise keep the old ones, and the release would never be up to date).
	act.ResetValues = true
	act.DisableOpenAPIValidation = true
	act.Labels = releaseLabels(obj, a)
	if pr := postRenderer(obj); pr != nil {
		act.PostRenderer = pr
	}
	wait, timeout := waitSettings(obj, false)
	act.Timeout = timeout
	if up != nil {
		// Helm leaves CRDs alone on upgrade; Create and CreateReplace are done here.
		if up.CRDs == helmv1.CRDsCreate || up.CRDs == helmv1.CRDsCreateReplace {
			if err := r.applyCRDs(ctx, obj, ch, up.CRDs == helmv1.CRDsCreateReplace); err != nil {
				return ctrl.Result{}, r.failure(ctx, obj, a.Revision, helmv1.UpgradeFailedReason, fmt.Errorf("CRDs of chart %s: %w", ch.Name(), err))
			}
		}
	}
	conditions.MarkReconciling(obj, helmv1.ProgressingReason, "upgrading to chart %s %s", ch.Name(), ch.Metadata.Version)
	before := latestVersion(cfg, obj.GetReleaseName())
	rls, err := act.RunWithContext(ctx, obj.GetReleaseName(), ch, vals)
	if err == nil {
		err = r.confirm(ctx, obj, cfg, rls, wait, act.Timeout, a.Revision)
	}
	if err != nil {
		return ctrl.Result{}, r.actionFailed(ctx, obj, cfg, a.Revision, false, before, fmt.Errorf("upgrade to chart %s %s failed: %w", ch.Name(), ch.Metadata.Version, err))
	}
	obj.Status.UpgradeFailures = 0
	conditions.MarkTrue(obj, helmv1.ReleasedCondition, helmv1.UpgradeSucceededReason, "upgraded to chart %s %s as revision %d", ch.Name(), ch.Metadata.Version, rls.Version)
	conditions.Delete(obj, helmv1.RemediatedCondition)
	conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.UpgradeSucceededReason, "upgraded release %s to revision %d: chart %s %s", rls.Name, rls.Version, ch.Name(), ch.Metadata.Version)
	r.event(ctx, obj, a.Revision, corev1.EventTypeNormal, helmv1.UpgradeSucceededReason, "upgraded release %s to revision %d, chart %s %s", rls.Name, rls.Version, ch.Name(), ch.Metadata.Version)
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// waitSettings are whether an install (or upgrade) waits for health, and its timeout.
func waitSettings(obj *helmv1.HelmRelease, install bool) (bool, time.Duration) {
	wait, timeout := true, obj.GetTimeout()
	var disable bool
	var t *metav1.Duration
	switch {
	case install && obj.Spec.Install != nil:
		disable, t = obj.Spec.Install.DisableWait, obj.Spec.Install.Timeout
	case !install && obj.Spec.Upgrade != nil:
		disable, t = obj.Spec.Upgrade.DisableWait, obj.Spec.Upgrade.Timeout
	}
	if t != nil {
		timeout = t.Duration
	}
	return wait && !disable, timeout
}

// applyCRDs creates the CRDs of the chart's crds/ folder that are missing, and with replace
// also updates those that exist (server-side apply), as the release's identity.
func (r *HelmReleaseReconciler) applyCRDs(ctx context.Context, obj *helmv1.HelmRelease, ch *chart.Chart, replace bool) error {
	files := ch.CRDObjects()
	if len(files) == 0 {
		return nil
	}
	cluster, err := r.cluster(ctx, obj)
	if err != nil {
		return err
	}
	c, err := cluster.Client()
	if err != nil {
		return err
	}
	mapper, err := cluster.Mapper()
	if err != nil {
		return err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		o, err := plumbrelease.Objects(string(f.File.Data), "", mapper)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Filename, err)
		}
		objs = append(objs, o...)
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

// confirm waits for the new revision's health, runs its tests, then labels it healthy: until
// then a stopped controller leaves it to be checked again.
func (r *HelmReleaseReconciler) confirm(ctx context.Context, obj *helmv1.HelmRelease, cfg *action.Configuration, rls *release.Release, wait bool, timeout time.Duration, revision string) error {
	if wait {
		if err := r.waitHealthy(ctx, obj, rls, timeout); err != nil {
			return err
		}
	}
	if err := r.runTests(ctx, obj, cfg, revision); err != nil {
		return err
	}
	return markHealthy(cfg, rls)
}

// recheck confirms a revision whose health wait or tests were cut short by a stop.
func (r *HelmReleaseReconciler) recheck(ctx context.Context, obj *helmv1.HelmRelease, cfg *action.Configuration, cur *release.Release, a *meta.Artifact) (ctrl.Result, error) {
	install := cur.Version == 1
	failures, rem, what := obj.Status.UpgradeFailures, upgradeRemediation(obj), "upgrade"
	if install {
		failures, rem, what = obj.Status.InstallFailures, installRemediation(obj), "install"
	}
	if exhausted(failures, rem) {
		return r.retriesExhausted(ctx, obj, a.Revision, what, failures)
	}
	wait, timeout := waitSettings(obj, install)
	if err := r.confirm(ctx, obj, cfg, cur, wait, timeout, a.Revision); err != nil {
		// The revision is stored: a failure is remediated as that of its action.
		return ctrl.Result{}, r.actionFailed(ctx, obj, cfg, a.Revision, install, cur.Version-1, fmt.Errorf("revision %d: %w", cur.Version, err))
	}
	conditions.MarkTrue(obj, meta.ReadyCondition, helmv1.SucceededReason, "release %s at revision %d confirmed healthy", cur.Name, cur.Version)
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// actionFailed handles a failed install or upgrade (or its wait or tests). A stop of the
// controller is not a failure of the release. A failure before Helm stored a revision (a chart
// that does not render, values its schema refuses) counts, but there is nothing to remediate.
// Otherwise the failure counts and is remediated (uninstall for an install; rollback or
// uninstall for an upgrade) unless it used up the retries and remediateLastFailure is off.
func (r *HelmReleaseReconciler) actionFailed(ctx context.Context, obj *helmv1.HelmRelease, cfg *action.Configuration, revision string, install bool, before int, msg error) error {
	reason, rem := helmv1.UpgradeFailedReason, upgradeRemediation(obj)
	if install {
		reason, rem = helmv1.InstallFailedReason, installRemediation(obj)
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
	if latestVersion(cfg, obj.GetReleaseName()) <= before {
		return r.failure(ctx, obj, revision, helmv1.RenderFailedReason, msg)
	}
	failures := obj.Status.UpgradeFailures
	if install {
		failures = obj.Status.InstallFailures
	}
	if !exhausted(failures, rem) || remediateLast(rem, install) {
		switch {
		case install, rem != nil && rem.Strategy == helmv1.RemediateUninstall:
			r.remediateUninstall(ctx, obj, cfg, revision)
		default:
			r.rollback(ctx, obj, cfg, revision)
		}
	}
	return r.failure(ctx, obj, revision, reason, msg)
}

// healthyLabel on a Helm release says whether its health was confirmed after the action: false
// while the wait runs, so that a release left by a controller stopped mid-wait is checked again
// instead of being taken as done.
const healthyLabel = "helm.plumb.dev/healthy"

// markHealthy records on the release that it passed its health wait and tests (read again
// from storage: the tests wrote their results there).
func markHealthy(cfg *action.Configuration, rls *release.Release) error {
	cur, err := cfg.Releases.Get(rls.Name, rls.Version)
	if err != nil {
		return err
	}
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	cur.Labels[healthyLabel] = "true"
	return cfg.Releases.Update(cur)
}

// releaseObjects returns a client of the release's identity and the objects of its manifest.
func (r *HelmReleaseReconciler) releaseObjects(ctx context.Context, obj *helmv1.HelmRelease, rls *release.Release) (client.Client, []*unstructured.Unstructured, error) {
	cluster, err := r.cluster(ctx, obj)
	if err != nil {
		return nil, nil, err
	}
	c, err := cluster.Client()
	if err != nil {
		return nil, nil, err
	}
	mapper, err := cluster.Mapper()
	if err != nil {
		return nil, nil, err
	}
	objs, err := plumbrelease.Objects(rls.Manifest, rls.Namespace, mapper)
	return c, objs, err
}

// waitHealthy waits, within timeout, until every object of the release's manifest is healthy as
// kstatus judges it. Helm's own wait polls every 2 s; this one starts at 100 ms, so that a
// release of objects that are ready at once takes a fraction of a second.
func (r *HelmReleaseReconciler) waitHealthy(ctx context.Context, obj *helmv1.HelmRelease, rls *release.Release, timeout time.Duration) error {
	c, objs, err := r.releaseObjects(ctx, obj, rls)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := health.Wait(wctx, c, objs, nil); err != nil {
		return fmt.Errorf("release %s revision %d not healthy: %w", rls.Name, rls.Version, err)
	}
	return nil
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
	return ctrl.Result{}, &exhaustedError{msg: msg}
}

// runTests runs the chart's test hooks when spec.test.enable; a failure is an error unless
// ignoreFailures.
func (r *HelmReleaseReconciler) runTests(ctx context.Context, obj *helmv1.HelmRelease, cfg *action.Configuration, revision string) error {
	t := obj.Spec.Test
	if t == nil || !t.Enable {
		conditions.Delete(obj, helmv1.TestSuccessCondition)
		return nil
	}
	act := action.NewReleaseTesting(cfg)
	act.Namespace, act.Timeout = obj.GetTargetNamespace(), obj.GetTimeout()
	if t.Timeout != nil {
		act.Timeout = t.Timeout.Duration
	}
	if _, err := act.Run(obj.GetReleaseName()); err != nil {
		conditions.MarkFalse(obj, helmv1.TestSuccessCondition, helmv1.TestFailedReason, "tests failed: %v", err)
		r.event(ctx, obj, revision, corev1.EventTypeWarning, helmv1.TestFailedReason, "tests of release %s failed: %v", obj.GetReleaseName(), err)
		if t.IgnoreFailures {
			return nil
		}
		return fmt.Errorf("tests failed: %w", err)
	}
	conditions.MarkTrue(obj, helmv1.TestSuccessCondition, helmv1.TestSucceededReason, "tests of release %s passed", obj.GetReleaseName())
	r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.TestSucceededReason, "tests of release %s passed", obj.GetReleaseName())
	return nil
}

// rollback returns the release to its last deployed revision.
func (r *HelmReleaseReconciler) rollback(ctx context.Context, obj *helmv1.HelmRelease, cfg *action.Configuration, revision string) {
	act := action.NewRollback(cfg)
	act.Timeout, act.Wait, act.WaitForJobs, act.MaxHistory = obj.GetTimeout(), true, true, obj.GetMaxHistory()
	// Helm's wait here: a rollback is rare, and its result is the previous, known-good revision.
	if rb := obj.Spec.Rollback; rb != nil {
		act.Wait, act.WaitForJobs, act.Force = !rb.DisableWait, !rb.DisableWait, rb.Force
	}
	if prev, err := previousDeployed(cfg, obj.GetReleaseName()); err == nil {
		act.Version = prev
	}
	if err := act.Run(obj.GetReleaseName()); err != nil {
		conditions.MarkFalse(obj, helmv1.RemediatedCondition, helmv1.RollbackFailedReason, "rollback failed: %v", err)
		r.event(ctx, obj, revision, corev1.EventTypeWarning, helmv1.RollbackFailedReason, "rollback of release %s failed: %v", obj.GetReleaseName(), err)
		return
	}
	conditions.MarkTrue(obj, helmv1.RemediatedCondition, helmv1.RollbackSucceededReason, "rolled back to revision %d after a failed upgrade", act.Version)
	r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.RollbackSucceededReason, "rolled back release %s to revision %d after a failed upgrade", obj.GetReleaseName(), act.Version)
}

// previousDeployed finds the newest revision that was deployed before the latest one (which
// may itself be deployed as Helm sees it, when its health wait or tests failed).
func previousDeployed(cfg *action.Configuration, name string) (int, error) {
	hist, err := cfg.Releases.History(name)
	if err != nil {
		return 0, err
	}
	latest := 0
	for _, h := range hist {
		latest = max(latest, h.Version)
	}
	best := 0
	for _, h := range hist {
		if h.Version < latest && h.Info != nil && (h.Info.Status == release.StatusSuperseded || h.Info.Status == release.StatusDeployed) && h.Version > best {
			best = h.Version
		}
	}
	if best == 0 {
		return 0, errors.New("no deployed revision to roll back to")
	}
	return best, nil
}

// remediateUninstall removes a failed release.
func (r *HelmReleaseReconciler) remediateUninstall(ctx context.Context, obj *helmv1.HelmRelease, cfg *action.Configuration, revision string) {
	if err := r.uninstall(obj, cfg); err != nil {
		conditions.MarkFalse(obj, helmv1.RemediatedCondition, helmv1.UninstallFailedReason, "uninstall failed: %v", err)
		r.event(ctx, obj, revision, corev1.EventTypeWarning, helmv1.UninstallFailedReason, "uninstall of failed release %s failed: %v", obj.GetReleaseName(), err)
		return
	}
	conditions.MarkTrue(obj, helmv1.RemediatedCondition, helmv1.UninstallSucceededReason, "uninstalled the failed release")
	r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.UninstallSucceededReason, "uninstalled failed release %s", obj.GetReleaseName())
}

func (r *HelmReleaseReconciler) uninstall(obj *helmv1.HelmRelease, cfg *action.Configuration) error {
	act := action.NewUninstall(cfg)
	act.Timeout, act.Wait = obj.GetTimeout(), true
	if u := obj.Spec.Uninstall; u != nil {
		act.KeepHistory, act.Wait = u.KeepHistory, !u.DisableWait
		act.DeletionPropagation = u.DeletionPropagation
	}
	if act.DeletionPropagation == "" {
		act.DeletionPropagation = "background"
	}
	_, err := act.Run(obj.GetReleaseName())
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil
	}
	return err
}

// finalize uninstalls the release, then lets the HelmRelease go. A release that another
// HelmRelease owns, or that is gone or already uninstalled, is left alone.
func (r *HelmReleaseReconciler) finalize(ctx context.Context, obj *helmv1.HelmRelease) error {
	if !controllerutil.ContainsFinalizer(obj, helmv1.Finalizer) {
		return nil
	}
	name := obj.GetReleaseName()
	if !obj.Spec.Suspend {
		cfg, err := r.actionConfig(ctx, obj)
		var cur *release.Release
		if err == nil {
			if cur, err = cfg.Releases.Last(name); errors.Is(err, driver.ErrReleaseNotFound) {
				cur, err = nil, nil
			}
		}
		switch {
		case err != nil:
		case cur == nil || cur.Info == nil || cur.Info.Status == release.StatusUninstalled:
		case ownerOf(cur) != "" && ownerOf(cur) != ownerID(obj):
			r.event(ctx, obj, "", corev1.EventTypeNormal, helmv1.UninstallSucceededReason, "release %s belongs to HelmRelease %s: left in place", name, ownerOf(cur))
		default:
			if err = r.uninstall(obj, cfg); err == nil {
				r.event(ctx, obj, "", corev1.EventTypeNormal, helmv1.UninstallSucceededReason, "uninstalled release %s", name)
			}
		}
		if err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) && !errors.Is(err, errInvalidKubeConfig) {
				return r.failure(ctx, obj, "", helmv1.UninstallFailedReason, fmt.Errorf("uninstall of release %s: %w", name, err))
			}
			// The identity, namespace or kubeconfig is gone or unusable: nothing more can be
			// uninstalled.
			r.event(ctx, obj, "", corev1.EventTypeWarning, helmv1.UninstallFailedReason, "release %s left in place: %v", name, err)
		}
	}
	controllerutil.RemoveFinalizer(obj, helmv1.Finalizer)
	return nil
}

// recordHistory writes status.history from Helm's storage.
func (r *HelmReleaseReconciler) recordHistory(cfg *action.Configuration, obj *helmv1.HelmRelease, name string) {
	hist, err := cfg.Releases.History(name)
	if err != nil {
		if errors.Is(err, driver.ErrReleaseNotFound) {
			obj.Status.History = nil
		}
		return
	}
	obj.Status.History = snapshots(hist, obj.GetMaxHistory())
}

// cluster returns the view of the cluster of the identity the release acts as (shared by every
// release of that identity): the controller's own, or a remote cluster's from spec.kubeConfig,
// either impersonating a ServiceAccount.
func (r *HelmReleaseReconciler) cluster(ctx context.Context, obj *helmv1.HelmRelease) (*plumbrelease.Cluster, error) {
	key, cfg := "controller", rest.CopyConfig(r.Config)
	if kc := obj.Spec.KubeConfig; kc != nil {
		data, err := kubeconfig.FromSecret(ctx, r.APIReader, obj.Namespace, kc.SecretRef.Name, kc.SecretRef.Key)
		if err != nil {
			return nil, err
		}
		if cfg, err = kubeconfig.RESTConfig(data); err != nil {
			return nil, fmt.Errorf("%w: spec.kubeConfig Secret %s: %v", errInvalidKubeConfig, kc.SecretRef.Name, err)
		}
		sum := sha256.Sum256(data)
		key = "kubeconfig:" + hex.EncodeToString(sum[:])
	}
	sa := obj.Spec.ServiceAccountName
	if sa == "" && obj.Spec.KubeConfig == nil {
		// The default identity is this cluster's; a remote cluster is reached as its kubeconfig
		// says unless a ServiceAccount is named.
		sa = r.DefaultServiceAccount
	}
	if sa != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: fmt.Sprintf("system:serviceaccount:%s:%s", obj.Namespace, sa)}
		key += "/sa:" + obj.Namespace + "/" + sa
	}
	if v, ok := r.clusters.Load(key); ok {
		return v.(*plumbrelease.Cluster), nil
	}
	v, _ := r.clusters.LoadOrStore(key, plumbrelease.NewCluster(cfg))
	return v.(*plumbrelease.Cluster), nil
}

// errInvalidKubeConfig marks a kubeconfig Secret that cannot be used as it is.
var errInvalidKubeConfig = errors.New("invalid kubeconfig")

// actionConfig makes Helm's configuration for the release: the identity to act as, the
// target namespace, release storage in Secrets of the storage namespace.
func (r *HelmReleaseReconciler) actionConfig(ctx context.Context, obj *helmv1.HelmRelease) (*action.Configuration, error) {
	cluster, err := r.cluster(ctx, obj)
	if err != nil {
		return nil, err
	}
	ac := new(action.Configuration)
	logf := func(format string, args ...any) {
		log.FromContext(ctx).V(1).Info(fmt.Sprintf(format, args...))
	}
	if err := ac.Init(cluster.Getter(obj.GetTargetNamespace()), obj.GetStorageNamespace(), "secret", logf); err != nil {
		return nil, err
	}
	ac.Releases.MaxHistory = obj.GetMaxHistory()
	return ac, nil
}

// helmChartKind is source-controller's kind that spec.chart templates.
const helmChartKind = "HelmChart"

// helmChartName is the name of the HelmChart made from spec.chart: <namespace>-<name>.
func helmChartName(hr *helmv1.HelmRelease) string { return hr.Namespace + "-" + hr.Name }

// ensureHelmChart creates or updates the HelmChart of spec.chart, owned by the HelmRelease (so
// that it goes with it), and removes one left from an earlier spec.chart when chartRef is used.
func (r *HelmReleaseReconciler) ensureHelmChart(ctx context.Context, obj *helmv1.HelmRelease) error {
	gvk := schema.GroupVersionKind{Group: "source.plumb.dev", Version: "v1beta1", Kind: helmChartKind}
	if obj.Spec.Chart == nil {
		if obj.Status.HelmChart == "" {
			return nil
		}
		ns, name, _ := strings.Cut(obj.Status.HelmChart, "/")
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		u.SetNamespace(ns)
		u.SetName(name)
		if err := r.Delete(ctx, u); err != nil && !apierrors.IsNotFound(err) {
			return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("deleting HelmChart %s of an earlier spec.chart: %w", obj.Status.HelmChart, err))
		}
		obj.Status.HelmChart = ""
		return nil
	}
	t := obj.Spec.Chart.Spec
	interval := obj.Spec.Interval.Duration.String()
	if t.Interval != nil {
		interval = t.Interval.Duration.String()
	}
	spec := map[string]any{
		"chart":     t.Chart,
		"sourceRef": map[string]any{"kind": t.SourceRef.Kind, "name": t.SourceRef.Name},
		"interval":  interval,
	}
	if t.Version != "" {
		spec["version"] = t.Version
	}
	if len(t.ValuesFiles) > 0 {
		files := make([]any, len(t.ValuesFiles))
		for i, f := range t.ValuesFiles {
			files[i] = f
		}
		spec["valuesFiles"] = files
	}
	if t.ReconcileStrategy != "" {
		spec["reconcileStrategy"] = t.ReconcileStrategy
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	key := types.NamespacedName{Namespace: obj.Namespace, Name: helmChartName(obj)}
	err := r.Get(ctx, key, u)
	switch {
	case apierrors.IsNotFound(err):
		u.SetNamespace(key.Namespace)
		u.SetName(key.Name)
		u.Object["spec"] = spec
		if err := controllerutil.SetControllerReference(obj, u, r.Scheme()); err != nil {
			return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, err)
		}
		if err := r.Create(ctx, u); err != nil {
			return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("creating HelmChart %s: %w", key, err))
		}
	case apimeta.IsNoMatchError(err):
		return r.wait(ctx, obj, helmv1.SourceNotReadyReason, "spec.chart needs source-controller's HelmChart kind, which this cluster does not serve")
	case err != nil:
		return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("HelmChart %s: %w", key, err))
	default:
		if !equality(u.Object["spec"], spec) {
			cur, _ := u.Object["spec"].(map[string]any)
			if cur == nil {
				cur = map[string]any{}
			}
			for _, k := range []string{"chart", "sourceRef", "interval", "version", "valuesFiles", "reconcileStrategy"} {
				if v, ok := spec[k]; ok {
					cur[k] = v
				} else {
					delete(cur, k)
				}
			}
			u.Object["spec"] = cur
			if err := r.Update(ctx, u); err != nil {
				return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("updating HelmChart %s: %w", key, err))
			}
		}
	}
	obj.Status.HelmChart = key.String()
	return nil
}

// equality compares the fields of want with those of have (which may hold defaults besides).
func equality(have any, want map[string]any) bool {
	h, ok := have.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range want {
		if fmt.Sprint(h[k]) != fmt.Sprint(v) {
			return false
		}
	}
	for _, k := range []string{"version", "valuesFiles", "reconcileStrategy"} {
		if _, ok := want[k]; !ok && h[k] != nil && !(k == "version" && h[k] == "*") && !(k == "reconcileStrategy" && h[k] == "ChartVersion") {
			return false
		}
	}
	return true
}

// chartArtifact reads the chart source through the artifact contract.
func (r *HelmReleaseReconciler) chartArtifact(ctx context.Context, obj *helmv1.HelmRelease) (*meta.Artifact, error) {
	if err := r.ensureHelmChart(ctx, obj); err != nil {
		return nil, err
	}
	gvk, key, err := chartKey(obj)
	if err != nil {
		return nil, r.stall(ctx, obj, helmv1.InvalidSpecReason, err.Error())
	}
	if r.NoCrossNamespaceRefs && key.Namespace != obj.Namespace {
		return nil, r.stall(ctx, obj, helmv1.InvalidSpecReason, fmt.Sprintf("spec.chartRef in namespace %s: this controller refuses references to other namespaces (--no-cross-namespace-refs)", key.Namespace))
	}
	name := fmt.Sprintf("%s %s", gvk.Kind, key)
	u, err := r.watches.Get(ctx, r.Client, gvk, key)
	if err != nil {
		return nil, r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("chart source %s: %w", name, err))
	}
	if u == nil {
		return nil, r.wait(ctx, obj, helmv1.SourceNotReadyReason, "chart source %s not found", name)
	}
	a, err := artifact.FromStatus(u)
	if err != nil {
		return nil, r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("chart source %s: %w", name, err))
	}
	if a.URL == "" {
		return nil, r.wait(ctx, obj, helmv1.SourceNotReadyReason, "chart source %s has no artifact yet", name)
	}
	if !refwatch.ReadyAtGeneration(u) {
		return nil, r.wait(ctx, obj, helmv1.SourceNotReadyReason, "chart source %s is not ready", name)
	}
	return &a, nil
}

// chartKey resolves the chart source: spec.chartRef with its defaults, or the HelmChart made
// from spec.chart. The kind and key are set even when the apiVersion does not parse.
func chartKey(obj *helmv1.HelmRelease) (schema.GroupVersionKind, types.NamespacedName, error) {
	ref := obj.Spec.ChartRef
	if obj.Spec.Chart != nil || ref == nil {
		ref = &helmv1.CrossNamespaceSourceReference{Kind: helmChartKind, Name: helmChartName(obj)}
	}
	ns, apiVersion := ref.Namespace, ref.APIVersion
	if ns == "" {
		ns = obj.Namespace
	}
	if apiVersion == "" {
		apiVersion = defaultSourceAPIVersion
	}
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionKind{Kind: ref.Kind}, key, fmt.Errorf("spec.chartRef.apiVersion %q: %w", apiVersion, err)
	}
	return gv.WithKind(ref.Kind), key, nil
}

// chartBytes downloads a chart artifact (digest-checked, once per digest while it is cached).
func (r *HelmReleaseReconciler) chartBytes(ctx context.Context, a *meta.Artifact) ([]byte, error) {
	c := &r.charts
	c.mu.Lock()
	data, ok := c.m[a.Digest]
	c.mu.Unlock()
	if !ok {
		v, err, _ := c.flight.Do(a.Digest, func() (any, error) {
			data, err := r.Fetcher.Fetch(ctx, a)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.m == nil {
				c.m = map[string][]byte{}
			}
			if len(c.order) >= maxCachedCharts {
				delete(c.m, c.order[0])
				c.order = c.order[1:]
			}
			c.m[a.Digest] = data
			c.order = append(c.order, a.Digest)
			return data, nil
		})
		if err != nil {
			return nil, err
		}
		data = v.([]byte)
	}
	return data, nil
}

// loadChart loads and checks a chart archive. Each action loads its own copy: Helm changes the
// chart it is given (disabled subcharts are dropped).
func loadChart(data []byte) (*chart.Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a chart: %w", err)
	}
	if err := ch.Validate(); err != nil {
		return nil, fmt.Errorf("invalid chart: %w", err)
	}
	return ch, nil
}

// values composes valuesFrom (in order) and spec.values (last).
func (r *HelmReleaseReconciler) values(ctx context.Context, obj *helmv1.HelmRelease) (map[string]any, []string, error) {
	vals := map[string]any{}
	var versions []string
	for _, ref := range obj.Spec.ValuesFrom {
		key := ref.ValuesKey
		if key == "" {
			key = "values.yaml"
		}
		nn := types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}
		var data []byte
		var found bool
		var err error
		switch ref.Kind {
		case "Secret":
			s := &corev1.Secret{}
			if err = r.APIReader.Get(ctx, nn, s); err == nil {
				data, found = s.Data[key]
				versions = append(versions, nn.Name+"@"+s.ResourceVersion)
			}
		default:
			cm := &corev1.ConfigMap{}
			if err = r.APIReader.Get(ctx, nn, cm); err == nil {
				var str string
				str, found = cm.Data[key]
				data = []byte(str)
			}
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("valuesFrom %s %s: %w", ref.Kind, nn, err)
		}
		if err != nil || !found {
			if ref.Optional {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("valuesFrom: %s %s not found", ref.Kind, nn)
			}
			return nil, nil, fmt.Errorf("valuesFrom: %s %s has no key %q", ref.Kind, nn, key)
		}
		if ref.Kind == "Secret" {
			addSecrets(ctx, stringLeaves(data))
		}
		if ref.TargetPath != "" {
			if err := plumbrelease.SetPath(vals, ref.TargetPath, strings.TrimRight(string(data), "\n")); err != nil {
				return nil, nil, fmt.Errorf("valuesFrom %s %s: %w", ref.Kind, nn, err)
			}
			continue
		}
		v, err := plumbrelease.ParseValues(data)
		if err != nil {
			// The parser's message may quote the content, which may be secret: only its place.
			return nil, nil, fmt.Errorf("valuesFrom %s %s key %q is not a YAML map of values", ref.Kind, nn, key)
		}
		vals = plumbrelease.Merge(vals, v)
	}
	if obj.Spec.Values != nil && len(obj.Spec.Values.Raw) > 0 {
		v, err := plumbrelease.ParseValues(obj.Spec.Values.Raw)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", errSpecValues, err)
		}
		vals = plumbrelease.Merge(vals, v)
	}
	return vals, versions, nil
}

// checkDependencies waits until every object of spec.dependsOn is Ready at its generation.
func (r *HelmReleaseReconciler) checkDependencies(ctx context.Context, obj *helmv1.HelmRelease) error {
	if len(obj.Spec.DependsOn) == 0 {
		return nil
	}
	if cycle := r.dependencyCycle(ctx, obj); cycle != "" {
		return r.stall(ctx, obj, helmv1.DependencyCycleReason, "spec.dependsOn leads back to this HelmRelease: "+cycle)
	}
	for _, d := range obj.Spec.DependsOn {
		if _, err := schema.ParseGroupVersion(d.APIVersion); d.APIVersion != "" && err != nil {
			return r.stall(ctx, obj, helmv1.InvalidSpecReason, fmt.Sprintf("spec.dependsOn apiVersion %q: %v", d.APIVersion, err))
		}
		gvk, key := dependencyKey(obj, d)
		if r.NoCrossNamespaceRefs && key.Namespace != obj.Namespace {
			return r.stall(ctx, obj, helmv1.InvalidSpecReason, fmt.Sprintf("spec.dependsOn %s: this controller refuses references to other namespaces (--no-cross-namespace-refs)", key))
		}
		name := fmt.Sprintf("%s %s", gvk.Kind, key)
		u, err := r.watches.Get(ctx, r.Client, gvk, key)
		if err != nil {
			return r.failure(ctx, obj, "", helmv1.DependencyNotReadyReason, fmt.Errorf("dependency %s: %w", name, err))
		}
		if u == nil {
			return r.wait(ctx, obj, helmv1.DependencyNotReadyReason, "dependency %s not found", name)
		}
		if !refwatch.ReadyAtGeneration(u) {
			return r.wait(ctx, obj, helmv1.DependencyNotReadyReason, "dependency %s is not ready", name)
		}
	}
	return nil
}

// dependencyCycle follows dependsOn through HelmReleases (from the cache) and returns the path
// back to obj, or "" when there is none.
func (r *HelmReleaseReconciler) dependencyCycle(ctx context.Context, obj *helmv1.HelmRelease) string {
	return plumbreconcile.DependencyCycle(ctx, r, obj, func() *helmv1.HelmRelease { return &helmv1.HelmRelease{} },
		func(hr *helmv1.HelmRelease) []types.NamespacedName {
			var out []types.NamespacedName
			for _, d := range hr.Spec.DependsOn {
				if gvk, key := dependencyKey(hr, d); gvk.Group == helmv1.GroupVersion.Group && gvk.Kind == helmv1.HelmReleaseKind {
					out = append(out, key)
				}
			}
			return out
		})
}

// errSpecValues marks spec.values that are not a map of values: only a change of the spec helps.
var errSpecValues = errors.New("spec.values")

// secretValuesKey carries a reconcile's *secretValues in its context.
type secretValuesKey struct{}

// secretValues are the values a reconcile read from Secrets.
type secretValues struct{ v []string }

func addSecrets(ctx context.Context, values []string) {
	if sv, ok := ctx.Value(secretValuesKey{}).(*secretValues); ok {
		sv.v = append(sv.v, values...)
	}
}

func secretsOf(ctx context.Context) []string {
	if sv, ok := ctx.Value(secretValuesKey{}).(*secretValues); ok {
		return sv.v
	}
	return nil
}

// stringLeaves returns a Secret key's value and, when it is YAML, the scalar values in it.
func stringLeaves(data []byte) []string {
	out := []string{strings.TrimRight(string(data), "\n")}
	vals, err := plumbrelease.ParseValues(data)
	if err != nil {
		return out
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case nil:
		default:
			out = append(out, fmt.Sprint(x))
		}
	}
	walk(vals)
	return out
}
