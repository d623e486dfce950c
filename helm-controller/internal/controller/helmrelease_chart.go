package controller

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/fluxcd/pkg/apis/meta"
	"golang.org/x/sync/singleflight"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/refwatch"
)

// defaultSourceAPIVersion is assumed for a chartRef without apiVersion.
const defaultSourceAPIVersion = "source.plumb.dev/v1beta1"

// helmChartKind is source-controller's kind that spec.chart templates.
const helmChartKind = "HelmChart"

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

// chart resolves the chart source and downloads its artifact. The chart is loaded only for an
// action, by the returned func: a release up to date needs none.
func (r *HelmReleaseReconciler) chart(ctx context.Context, obj *helmv1.HelmRelease) (*meta.Artifact, func() (*chart.Chart, error), error) {
	a, err := r.chartArtifact(ctx, obj)
	if err != nil {
		return nil, nil, err
	}
	data, err := r.chartBytes(ctx, a)
	if err != nil {
		return nil, nil, r.failure(ctx, obj, a.Revision, helmv1.ArtifactFailedReason, fmt.Errorf("chart artifact %s: %w", a.Revision, err))
	}
	load := func() (*chart.Chart, error) {
		ch, err := loadChart(data)
		if err != nil {
			return nil, r.failure(ctx, obj, a.Revision, helmv1.ArtifactFailedReason, fmt.Errorf("chart artifact %s: %w", a.Revision, err))
		}
		return ch, nil
	}
	return a, load, nil
}

// helmChartName is the name of the HelmChart made from spec.chart: <namespace>-<name>.
func helmChartName(hr *helmv1.HelmRelease) string { return hr.Namespace + "-" + hr.Name }

// chartNamespace is where the HelmChart of spec.chart lives: its source's namespace.
func chartNamespace(hr *helmv1.HelmRelease) string {
	if hr.Spec.Chart != nil && hr.Spec.Chart.Spec.SourceRef.Namespace != "" {
		return hr.Spec.Chart.Spec.SourceRef.Namespace
	}
	return hr.Namespace
}

// deleteHelmChart deletes the HelmChart at key ("namespace/name"), made for an earlier spec.
func (r *HelmReleaseReconciler) deleteHelmChart(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: "source.plumb.dev", Version: "v1beta1", Kind: helmChartKind})
	u.SetNamespace(ns)
	u.SetName(name)
	if err := r.Delete(ctx, u); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting HelmChart %s of an earlier spec.chart: %w", key, err)
	}
	return nil
}

// ensureHelmChart creates or updates the HelmChart of spec.chart, owned by the HelmRelease (so
// that it goes with it), and removes one left from an earlier spec.chart when chartRef is used.
func (r *HelmReleaseReconciler) ensureHelmChart(ctx context.Context, obj *helmv1.HelmRelease) error {
	gvk := schema.GroupVersionKind{Group: "source.plumb.dev", Version: "v1beta1", Kind: helmChartKind}
	if obj.Spec.Chart == nil {
		if obj.Status.HelmChart == "" {
			return nil
		}
		if err := r.deleteHelmChart(ctx, obj.Status.HelmChart); err != nil {
			return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, err)
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
	if t.IgnoreMissingValuesFiles {
		spec["ignoreMissingValuesFiles"] = true
	}
	if t.Verify != nil {
		spec["verify"] = verifySpec(t.Verify)
	}
	var labels, annotations map[string]string
	if m := obj.Spec.Chart.ObjectMeta; m != nil {
		labels, annotations = m.Labels, m.Annotations
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	key := types.NamespacedName{Namespace: chartNamespace(obj), Name: helmChartName(obj)}
	if old := obj.Status.HelmChart; old != "" && old != key.String() {
		// The source moved to another namespace: the HelmChart of the earlier one goes.
		if err := r.deleteHelmChart(ctx, old); err != nil {
			return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, err)
		}
		obj.Status.HelmChart = ""
	}
	// Once a reconcile has met the kind, from the watch's cache: no request when nothing changed.
	err := r.watches.Cached(r.Client).Get(ctx, key, u)
	switch {
	case apierrors.IsNotFound(err):
		u.SetNamespace(key.Namespace)
		u.SetName(key.Name)
		u.Object["spec"] = spec
		u.SetLabels(labels)
		u.SetAnnotations(annotations)
		// An owner reference works within a namespace only; a HelmChart in the source's
		// namespace is deleted by the finalizer instead.
		if key.Namespace == obj.Namespace {
			if err := controllerutil.SetControllerReference(obj, u, r.Scheme()); err != nil {
				return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, err)
			}
		}
		if err := r.Create(ctx, u); err != nil {
			return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("creating HelmChart %s: %w", key, err))
		}
	case apimeta.IsNoMatchError(err):
		return r.wait(ctx, obj, helmv1.SourceNotReadyReason, "spec.chart needs source-controller's HelmChart kind, which this cluster does not serve")
	case err != nil:
		return r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("HelmChart %s: %w", key, err))
	default:
		metaChanged := setMissing(u, labels, annotations)
		if !equality(u.Object["spec"], spec) || metaChanged {
			cur, _ := u.Object["spec"].(map[string]any)
			if cur == nil {
				cur = map[string]any{}
			}
			for _, k := range templatedFields {
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

// templatedFields are the HelmChart spec fields that spec.chart.spec sets.
var templatedFields = []string{"chart", "sourceRef", "interval", "version", "valuesFiles", "reconcileStrategy", "ignoreMissingValuesFiles", "verify"}

// verifySpec is spec.chart.spec.verify as the HelmChart's spec.verify, in the shape the API
// server returns it (the provider defaulted), so that an unchanged template compares equal.
func verifySpec(v *helmv1.HelmChartTemplateVerification) map[string]any {
	provider := v.Provider
	if provider == "" {
		provider = "cosign"
	}
	out := map[string]any{"provider": provider}
	if v.SecretRef != nil {
		out["secretRef"] = map[string]any{"name": v.SecretRef.Name}
	}
	if len(v.MatchOIDCIdentity) > 0 {
		ids := make([]any, len(v.MatchOIDCIdentity))
		for i, id := range v.MatchOIDCIdentity {
			ids[i] = map[string]any{"issuer": id.Issuer, "subject": id.Subject}
		}
		out["matchOIDCIdentity"] = ids
	}
	if v.TrustedRootSecretRef != nil {
		out["trustedRootSecretRef"] = map[string]any{"name": v.TrustedRootSecretRef.Name}
	}
	return out
}

// setMissing sets on u the labels and annotations of spec.chart.metadata that it lacks or has
// with another value, and says whether it changed anything. Labels and annotations others set
// on the HelmChart are kept.
func setMissing(u *unstructured.Unstructured, labels, annotations map[string]string) bool {
	changed := false
	set := func(get func() map[string]string, put func(map[string]string), want map[string]string) {
		have := get()
		for k, v := range want {
			if cur, ok := have[k]; !ok || cur != v {
				if have == nil {
					have = map[string]string{}
				}
				have[k], changed = v, true
			}
		}
		put(have)
	}
	set(u.GetLabels, u.SetLabels, labels)
	set(u.GetAnnotations, u.SetAnnotations, annotations)
	return changed
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
	for _, k := range []string{"version", "valuesFiles", "reconcileStrategy", "ignoreMissingValuesFiles", "verify"} {
		if _, ok := want[k]; !ok && h[k] != nil && !(k == "version" && h[k] == "*") && !(k == "reconcileStrategy" && h[k] == "ChartVersion") && h[k] != false {
			return false
		}
	}
	return true
}

// chartArtifact reads the chart source through the artifact contract. The reference was
// checked by validate.
func (r *HelmReleaseReconciler) chartArtifact(ctx context.Context, obj *helmv1.HelmRelease) (*meta.Artifact, error) {
	if err := r.ensureHelmChart(ctx, obj); err != nil {
		return nil, err
	}
	gvk, key, _ := chartKey(obj)
	name := fmt.Sprintf("%s %s", gvk.Kind, key)
	u, err := r.watches.Get(ctx, r.watches.Cached(r.Client), gvk, key)
	if err != nil {
		return nil, r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("chart source %s: %w", name, err))
	}
	// Missing, unreadable, without artifact or not Ready: one message, so that it does not
	// tell whether the object exists.
	notReady := refwatch.NotReadyOrNotFound("chart source " + name)
	if u == nil {
		return nil, r.wait(ctx, obj, helmv1.SourceNotReadyReason, "%s", notReady)
	}
	a, err := artifact.FromStatus(u)
	if err != nil {
		return nil, r.failure(ctx, obj, "", helmv1.SourceNotReadyReason, fmt.Errorf("chart source %s: %w", name, err))
	}
	if a.URL == "" || !refwatch.ReadyAtGeneration(u) {
		return nil, r.wait(ctx, obj, helmv1.SourceNotReadyReason, "%s", notReady)
	}
	return &a, nil
}

// chartKey resolves the chart source: spec.chartRef with its defaults, or the HelmChart made
// from spec.chart. The kind and key are set even when the apiVersion does not parse.
func chartKey(obj *helmv1.HelmRelease) (schema.GroupVersionKind, types.NamespacedName, error) {
	ref := obj.Spec.ChartRef
	if obj.Spec.Chart != nil || ref == nil {
		ref = &helmv1.CrossNamespaceSourceReference{Kind: helmChartKind, Name: helmChartName(obj), Namespace: chartNamespace(obj)}
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
