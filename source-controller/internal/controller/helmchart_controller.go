package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"helm.sh/helm/v3/pkg/repo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/proxy"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/refwatch"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/status"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/helm"
	"github.com/plumb-dev/plumb/source-controller/internal/oci"
	"github.com/plumb-dev/plumb/source-controller/internal/storage"
	"github.com/plumb-dev/plumb/source-controller/internal/verify"
)

// +kubebuilder:rbac:groups=source.plumb.dev,resources=helmcharts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=helmcharts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=helmcharts/finalizers,verbs=update

// helmChartSourceIndex indexes HelmCharts by their source, as Kind/namespace/name.
const helmChartSourceIndex = ".spec.sourceRef"

// HelmChartReconciler packages a chart from a HelmRepository, GitRepository or OCIRepository.
type HelmChartReconciler struct {
	client.Client
	// Events records Kubernetes Events on the objects.
	Events recorder.EventRecorder
	// Storage keeps and serves the artifacts, and holds the sources' artifacts read here.
	Storage *storage.Storage
	// ControllerName is the field owner of status patches.
	ControllerName string
	// MaxChartSize bounds a downloaded chart (default 50 MiB).
	MaxChartSize int64
	// Cloud obtains and caches the credentials of an OCI HelmRepository's provider aws, azure
	// or gcp (nil: a process-wide one).
	Cloud *registry.Cloud

	statusHelper
	indexes indexCache
	// verified remembers the chart digests whose signatures verified, by settings.
	verified *verify.Cache
	// flight shares one download between HelmCharts that want the same chart version.
	flight singleflight.Group
	// verificationRequired refuses HelmCharts that cannot be verified (--require-verification).
	verificationRequired bool
}

// indexCache keeps the parsed indexes of HelmRepository artifacts by digest: a 5,000-version
// index is parsed once per revision, not once per HelmChart.
type indexCache struct {
	mu     sync.Mutex
	m      map[string]*repo.IndexFile
	order  []string
	flight singleflight.Group
}

const maxCachedIndexes = 16

// indexLoads counts the HelmRepository indexes read and parsed, to show they are parsed once per
// revision.
var indexLoads = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "plumb_helm_index_loads_total",
	Help: "HelmRepository indexes parsed for HelmCharts (once per index revision while cached).",
})

func init() { crmetrics.Registry.MustRegister(indexLoads) }

func (c *indexCache) get(s *storage.Storage, a *meta.Artifact) (*repo.IndexFile, error) {
	c.mu.Lock()
	idx, ok := c.m[a.Digest]
	c.mu.Unlock()
	if ok {
		return idx, nil
	}
	v, err, _ := c.flight.Do(a.Digest, func() (any, error) {
		f, err := s.Open(a)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var data []byte
		err = artifact.Walk(f, artifact.DefaultLimits, func(e artifact.Entry, body io.Reader) error {
			if e.Name != IndexFile {
				return nil
			}
			var err error
			data, err = io.ReadAll(body)
			return err
		})
		if err != nil {
			return nil, err
		}
		idx, err := helm.LoadIndex(data)
		if err != nil {
			return nil, err
		}
		indexLoads.Inc()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.m == nil {
			c.m = map[string]*repo.IndexFile{}
		}
		if len(c.order) >= maxCachedIndexes {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
		c.m[a.Digest] = idx
		c.order = append(c.order, a.Digest)
		return idx, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*repo.IndexFile), nil
}

// SetupWithManager registers the reconciler: it runs on spec changes and reconcile requests,
// and when the source's artifact changes.
func (r *HelmChartReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	r.statusHelper = newStatusHelper(r.Events, r.ControllerName, opts)
	r.verified = verify.NewCache(verifiedCacheSize)
	r.verificationRequired = opts.RequireVerification[sourcev1.HelmChartKind]
	if r.MaxChartSize == 0 {
		r.MaxChartSize = 50 << 20
	}
	err := mgr.GetFieldIndexer().IndexField(ctx, &sourcev1.HelmChart{}, helmChartSourceIndex, func(o client.Object) []string {
		ref := o.(*sourcev1.HelmChart).Spec.SourceRef
		return []string{refwatch.Key(ref.Kind, o.GetNamespace(), ref.Name)}
	})
	if err != nil {
		return err
	}
	chartsOf := refwatch.Referrers(r.Client, func() client.ObjectList { return &sourcev1.HelmChartList{} }, helmChartSourceIndex)
	b := ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.HelmChart{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{})))
	for kind, obj := range map[string]client.Object{
		sourcev1.HelmRepositoryKind: &sourcev1.HelmRepository{},
		sourcev1.GitRepositoryKind:  &sourcev1.GitRepository{},
		sourcev1.OCIRepositoryKind:  &sourcev1.OCIRepository{},
	} {
		b = b.Watches(obj, handler.EnqueueRequestsFromMapFunc(chartsOf(kind)), builder.WithPredicates(sourceArtifactChanged{}))
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).Complete(r)
}

// sourceArtifactChanged passes updates of a source whose artifact changed or that turned Ready
// (an OCI HelmRepository has no artifact).
type sourceArtifactChanged struct{ predicate.Funcs }

func (sourceArtifactChanged) Create(event.CreateEvent) bool   { return false }
func (sourceArtifactChanged) Delete(event.DeleteEvent) bool   { return false }
func (sourceArtifactChanged) Generic(event.GenericEvent) bool { return false }
func (sourceArtifactChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(sourceObject)
	n, ok2 := e.ObjectNew.(sourceObject)
	if !ok1 || !ok2 {
		return false
	}
	oa, na := o.GetArtifact(), n.GetArtifact()
	if na != nil && (oa == nil || oa.Digest != na.Digest || oa.Revision != na.Revision) {
		return true
	}
	return conditions.IsReady(n) && !conditions.IsReady(o)
}

// Reconcile follows the house shape: get, defer the one status patch, finalize or set up, skip
// when suspended, then the ordered steps.
func (r *HelmChartReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &sourcev1.HelmChart{}
	if found, err := status.Get(ctx, r.Client, sourcev1.HelmChartKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		r.finalizeStatus(ctx, obj, helmChartStatus(obj), patcher, &result, &retErr)
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(obj)
	}
	controllerutil.AddFinalizer(obj, sourcev1.SourceFinalizer)
	if obj.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if r.verificationRequired && obj.Spec.Verify == nil && obj.Spec.SourceRef.Kind == sourcev1.HelmRepositoryKind {
		return ctrl.Result{}, r.refuseUnverified(obj, verificationRequiredMessage(sourcev1.HelmChartKind, helmVerifyHowTo))
	}
	return r.reconcile(ctx, obj)
}

// built is a packaged chart before it is stored.
type built struct {
	data     []byte
	version  string
	name     string
	values   []string
	revision string // of the source's artifact
}

func (r *HelmChartReconciler) reconcile(ctx context.Context, obj *sourcev1.HelmChart) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		markReconciling(obj, "reconciling generation %d", obj.Generation)
	}
	opCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	if v := obj.Spec.SourceRef.APIVersion; v != "" && v != sourcev1.GroupVersion.String() {
		return ctrl.Result{}, r.stall(obj, sourcev1.InvalidSpecReason,
			fmt.Sprintf("spec.sourceRef.apiVersion %q: a HelmChart's source is a %s kind; set apiVersion: %s or leave it out", v, sourcev1.GroupVersion.Group, sourcev1.GroupVersion))
	}
	if obj.Spec.Verify == nil || obj.Spec.SourceRef.Kind != sourcev1.HelmRepositoryKind {
		// As in Flux, only charts from an OCI HelmRepository are verified.
		conditions.Delete(obj, sourcev1.SourceVerifiedCondition)
	}
	var b *built
	var err error
	switch obj.Spec.SourceRef.Kind {
	case sourcev1.HelmRepositoryKind:
		b, err = r.fromRepository(opCtx, obj)
	default:
		b, err = r.fromArtifact(opCtx, obj)
	}
	if err != nil {
		return ctrl.Result{}, r.failure(obj, err)
	}
	if b != nil { // nil: the stored artifact is up to date
		a, err := r.Storage.Write(helmChartObject(obj), b.version, func(w io.Writer) error {
			_, err := w.Write(b.data)
			return err
		})
		if err != nil {
			return ctrl.Result{}, r.failure(obj, err)
		}
		obj.Status.Artifact = a
		obj.Status.ObservedChartName = b.name
		obj.Status.ObservedValuesFiles = b.values
		obj.Status.ObservedSourceArtifactRevision = b.revision
		r.event(obj, b.version, corev1.EventTypeNormal, sourcev1.SucceededReason, "packaged chart %s %s", b.name, b.version)
		if err := r.Storage.GC(helmChartObject(obj), a); err != nil {
			log.FromContext(ctx).Error(err, "garbage collecting old artifacts")
		}
	}
	markReadyMessage(obj, "packaged chart %s %s", obj.Status.ObservedChartName, obj.Status.Artifact.Revision)
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
}

// errSource marks a source that is missing or has no artifact yet.
var errSource = errors.New("source not ready")

// errVerificationRequired marks a chart the policy requires to be verified and that cannot be;
// errSourceUnverified a chart packaged from a source artifact that was not verified (the
// source's spec may change, so it waits).
var (
	errVerificationRequired = errors.New(verificationRequiredMessage(sourcev1.HelmChartKind, "its chart cannot be verified"))
	errSourceUnverified     = errors.New(verificationRequiredMessage(sourcev1.HelmChartKind, "its chart's source is not verified"))
)

// upToDate says whether the stored artifact is version, packaged with the current spec.
func (r *HelmChartReconciler) upToDate(obj *sourcev1.HelmChart, version string) bool {
	s := obj.Status
	return s.Artifact != nil && r.Storage.Has(s.Artifact) && s.Artifact.Revision == version && builtWithSpec(obj)
}

// builtWithSpec says whether the stored artifact was made with the current spec: the generation
// was observed, and not by a stall (a stall observes a spec it could not build).
func builtWithSpec(obj *sourcev1.HelmChart) bool {
	return obj.Status.ObservedGeneration == obj.Generation && !conditions.IsStalled(obj)
}

// fromRepository picks the version from the HelmRepository's index (or the OCI registry's tags)
// and downloads the chart, unless the stored artifact already is that version.
func (r *HelmChartReconciler) fromRepository(ctx context.Context, obj *sourcev1.HelmChart) (*built, error) {
	src := &sourcev1.HelmRepository{}
	if err := r.source(ctx, obj, src); err != nil {
		return nil, err
	}
	if r.verificationRequired && !src.IsOCI() {
		return nil, fmt.Errorf("%w: HelmRepository %s is not an OCI registry, and only charts from OCI registries can be verified: push the chart to an OCI registry, sign it and point the HelmChart at an OCI HelmRepository",
			errVerificationRequired, src.Name)
	}
	if src.IsOCI() {
		creds, err := r.repoCredentials(ctx, src)
		if err != nil {
			return nil, err
		}
		return r.fromOCIRepository(ctx, obj, src, creds)
	}
	conditions.Delete(obj, sourcev1.SourceVerifiedCondition)
	if src.Status.Artifact == nil || !r.Storage.Has(src.Status.Artifact) {
		return nil, fmt.Errorf("%w: HelmRepository %s has no index yet", errSource, src.Name)
	}
	if src.Status.ObservedGeneration != src.Generation {
		// Its index may be of another URL than the one charts would be downloaded from.
		return nil, fmt.Errorf("%w: HelmRepository %s has not reconciled its current spec yet", errSource, src.Name)
	}
	idx, err := r.indexes.get(r.Storage, src.Status.Artifact)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the index of HelmRepository %s: %v", helm.ErrIndex, src.Name, err)
	}
	cv, err := helm.SelectVersion(idx, obj.Spec.Chart, obj.GetVersion())
	if err != nil {
		return nil, err
	}
	if r.upToDate(obj, cv.Version) {
		return nil, nil
	}
	// Credentials are read only for a download.
	creds, err := r.repoCredentials(ctx, src)
	if err != nil {
		return nil, err
	}
	client, err := helm.Client(creds)
	if err != nil {
		return nil, err
	}
	release, err := r.acquireHost(ctx, obj, src.Spec.URL)
	if err != nil {
		return nil, err
	}
	defer release()
	// Shared only by HelmCharts of the same HelmRepository: the same URL and credentials.
	key := fmt.Sprintf("chart:%s/%s@%s/%s", src.Namespace, src.Name, cv.Name, cv.Version)
	v, err, _ := r.flight.Do(key, func() (any, error) {
		return helm.Download(ctx, client, src.Spec.URL, cv, creds, src.Spec.PassCredentials, r.MaxChartSize)
	})
	if err != nil {
		return nil, err
	}
	return r.finish(obj, v.([]byte))
}

// fromOCIRepository pulls the chart from <url>/<chart> in a registry.
func (r *HelmChartReconciler) fromOCIRepository(ctx context.Context, obj *sourcev1.HelmChart, src *sourcev1.HelmRepository, creds helm.Credentials) (*built, error) {
	url := strings.TrimSuffix(src.Spec.URL, "/") + "/" + obj.Spec.Chart
	ocreds := ociCredentials(src, creds)
	if registry.IsCloud(src.Spec.Provider) && src.Spec.SecretRef == nil {
		// As in Flux, a secretRef wins over the provider; the identity is the controller's.
		repo, err := oci.ParseURL(url, ocreds)
		if err != nil {
			return nil, err
		}
		id := registry.Identity{Provider: src.Spec.Provider, Namespace: obj.Namespace, Kind: sourcev1.HelmChartKind, Name: obj.Name, Proxy: ocreds.Proxy}
		if err := r.Cloud.Login(ctx, r.Client, repo, id, &ocreds); err != nil {
			return nil, err
		}
	}
	remote, err := oci.NewRemote(url, ocreds)
	if err != nil {
		return nil, err
	}
	release, err := r.acquireHost(ctx, obj, src.Spec.URL)
	if err != nil {
		return nil, err
	}
	defer release()
	// An exact version is one HEAD of its tag (no tag listing permission needed); a range lists
	// the tags. `helm push` writes the + of build metadata as _.
	ref := oci.Ref{SemVer: obj.GetVersion()}
	if v, err := semver.StrictNewVersion(strings.TrimPrefix(obj.GetVersion(), "v")); err == nil && strings.TrimPrefix(obj.GetVersion(), "v") == v.Original() {
		ref = oci.Ref{Tag: strings.ReplaceAll(obj.GetVersion(), "+", "_")}
	}
	res, err := remote.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if obj.Spec.Verify != nil {
		// Before anything of the chart is read: a refusal keeps the last verified chart.
		v, err := verifyArtifact(ctx, r.Client, r.verified, obj.Namespace, requested(obj, obj.Status.LastHandledReconcileAt), obj.Spec.Verify, remote, res.Digest)
		if err != nil {
			return nil, err
		}
		markVerified(obj, res.Revision, v)
	}
	if r.upToDate(obj, strings.ReplaceAll(res.Tag, "_", "+")) {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := remote.Write(ctx, res, oci.Layer{MediaType: helm.ChartLayerMediaType, Copy: true}, artifact.Limits{MaxFiles: 1, MaxBytes: r.MaxChartSize}, &buf); err != nil {
		return nil, err
	}
	return r.finish(obj, buf.Bytes())
}

// ociCredentials are the registry credentials of an OCI HelmRepository: username and password,
// or a dockerconfigjson Secret.
func ociCredentials(src *sourcev1.HelmRepository, c helm.Credentials) oci.Credentials {
	out := oci.Credentials{Username: c.Username, Password: c.Password, CA: c.CA, Cert: c.Cert, Key: c.Key, Insecure: src.Spec.Insecure, Proxy: c.Proxy}
	if len(c.DockerConfig) > 0 {
		out.DockerConfigs = [][]byte{c.DockerConfig}
	}
	return out
}

// fromArtifact loads the chart from a folder of a GitRepository's or OCIRepository's artifact,
// vendors its dependencies and packages it.
func (r *HelmChartReconciler) fromArtifact(ctx context.Context, obj *sourcev1.HelmChart) (*built, error) {
	var src sourceObject
	switch obj.Spec.SourceRef.Kind {
	case sourcev1.GitRepositoryKind:
		src = &sourcev1.GitRepository{}
	case sourcev1.OCIRepositoryKind:
		src = &sourcev1.OCIRepository{}
	default:
		return nil, fmt.Errorf("%w: spec.sourceRef.kind %q", helm.ErrInvalid, obj.Spec.SourceRef.Kind)
	}
	if err := r.source(ctx, obj, src); err != nil {
		return nil, err
	}
	a := src.GetArtifact()
	if a == nil || !r.Storage.Has(a) {
		return nil, fmt.Errorf("%w: %s %s has no artifact yet", errSource, obj.Spec.SourceRef.Kind, src.GetName())
	}
	if r.verificationRequired && !conditions.IsTrue(src, sourcev1.SourceVerifiedCondition) {
		return nil, fmt.Errorf("%w: %s %s has not verified its artifact (its SourceVerified condition is not True): add spec.verify to the %s",
			errSourceUnverified, obj.Spec.SourceRef.Kind, src.GetName(), obj.Spec.SourceRef.Kind)
	}
	if st := obj.Status; st.Artifact != nil && r.Storage.Has(st.Artifact) && st.ObservedSourceArtifactRevision == a.Revision && builtWithSpec(obj) {
		return nil, nil // packaged from this very revision with this spec
	}
	// The version is known only from Chart.yaml: for a new source revision the artifact is
	// unpacked and the chart loaded (cheap next to packaging), and packaged only when the
	// version (or, under the Revision strategy, the source revision) differs from the stored
	// artifact's.
	dir, err := os.MkdirTemp("", "plumb-helmchart-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f, err := r.Storage.Open(a)
	if err != nil {
		return nil, err
	}
	err = artifact.Extract(f, dir, artifact.DefaultLimits)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: unpacking the artifact of %s %s: %v", helm.ErrPackage, obj.Spec.SourceRef.Kind, src.GetName(), err)
	}
	chartDir := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(obj.Spec.Chart, "./")))
	if rel, err := filepath.Rel(dir, chartDir); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("%w: spec.chart %q leaves the artifact", helm.ErrInvalid, obj.Spec.Chart)
	}
	if fi, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("%w: %s of %s %s has no Chart.yaml", helm.ErrPackage, obj.Spec.Chart, obj.Spec.SourceRef.Kind, src.GetName())
	}
	ch, err := helm.LoadDir(chartDir)
	if err != nil {
		return nil, err
	}
	version := ch.Metadata.Version
	if obj.Spec.ReconcileStrategy == sourcev1.ReconcileStrategyRevision {
		version = withRevision(version, a.Revision)
	}
	if r.upToDate(obj, version) {
		// A new source revision with the same chart version: nothing to package.
		obj.Status.ObservedSourceArtifactRevision = a.Revision
		return nil, nil
	}
	deps := &helm.Dependencies{Root: dir, Lookup: r.lookup(obj.Namespace), Limit: r.MaxChartSize}
	if err := deps.Resolve(ctx, ch, chartDir); err != nil {
		return nil, err
	}
	ch.Metadata.Version = version
	used, err := helm.MergeValuesFiles(ch, obj.Spec.ValuesFiles, obj.Spec.IgnoreMissingValuesFiles)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := helm.Package(ch, &buf); err != nil {
		return nil, err
	}
	return &built{data: buf.Bytes(), version: version, name: ch.Name(), values: used, revision: a.Revision}, nil
}

// finish checks a downloaded package and applies the values files.
func (r *HelmChartReconciler) finish(obj *sourcev1.HelmChart, data []byte) (*built, error) {
	ch, err := helm.Load(data)
	if err != nil {
		return nil, err
	}
	b := &built{data: data, version: ch.Metadata.Version, name: ch.Name()}
	if len(obj.Spec.ValuesFiles) == 0 {
		return b, nil // stored as published: its digest is the repository's
	}
	if b.values, err = helm.MergeValuesFiles(ch, obj.Spec.ValuesFiles, obj.Spec.IgnoreMissingValuesFiles); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := helm.Package(ch, &buf); err != nil {
		return nil, err
	}
	b.data = buf.Bytes()
	return b, nil
}

// withRevision adds a short form of a source revision to a chart version as build metadata.
func withRevision(version, revision string) string {
	d := revision
	if i := strings.LastIndex(d, ":"); i >= 0 {
		d = d[i+1:]
	}
	if len(d) > 12 {
		d = d[:12]
	}
	if d == "" {
		return version
	}
	base, _, _ := strings.Cut(version, "+")
	return base + "+" + d
}

// source reads the HelmChart's source into src.
func (r *HelmChartReconciler) source(ctx context.Context, obj *sourcev1.HelmChart, src client.Object) error {
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.SourceRef.Name}
	if err := r.Get(ctx, key, src); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%w: %s %s not found", errSource, obj.Spec.SourceRef.Kind, key)
		}
		return fmt.Errorf("%w: %s %s: %v", errSource, obj.Spec.SourceRef.Kind, key, err)
	}
	return nil
}

// repoCredentials reads a HelmRepository's Secret.
func (r *HelmChartReconciler) repoCredentials(ctx context.Context, src *sourcev1.HelmRepository) (helm.Credentials, error) {
	var c helm.Credentials
	if ref := src.Spec.ProxySecretRef; ref != nil {
		px, err := proxy.FromSecret(ctx, r.Client, src.Namespace, ref.Name)
		if err != nil {
			return c, fmt.Errorf("HelmRepository %s: %w", src.Name, err)
		}
		c.Proxy = px
	}
	if ref := src.Spec.SecretRef; ref != nil {
		s := &corev1.Secret{}
		key := types.NamespacedName{Namespace: src.Namespace, Name: ref.Name}
		if err := r.Get(ctx, key, s); err != nil {
			return c, fmt.Errorf("%w: credentials Secret %s of HelmRepository %s: %v", helm.ErrAuth, key, src.Name, err)
		}
		c.Username, c.Password = string(s.Data["username"]), string(s.Data["password"])
		c.CA, c.Cert, c.Key = s.Data["ca.crt"], s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
		c.DockerConfig = s.Data[corev1.DockerConfigJsonKey]
	}
	if err := certSecret(ctx, r.Client, src, &c); err != nil {
		return c, fmt.Errorf("HelmRepository %s: %w", src.Name, err)
	}
	return c, nil
}

// lookup finds the HelmRepository of the namespace a dependency names (@name or alias:name) or
// whose URL it gives; an unknown URL is read without credentials.
func (r *HelmChartReconciler) lookup(ns string) helm.RepositoryLookup {
	return func(ctx context.Context, ref string) (helm.Repository, error) {
		name, byName := strings.CutPrefix(ref, "@")
		if !byName {
			name, byName = strings.CutPrefix(ref, "alias:")
		}
		var list sourcev1.HelmRepositoryList
		if err := r.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return helm.Repository{}, err
		}
		for i := range list.Items {
			hr := &list.Items[i]
			if (byName && hr.Name == name) || (!byName && strings.TrimSuffix(hr.Spec.URL, "/") == strings.TrimSuffix(ref, "/")) {
				creds, err := r.repoCredentials(ctx, hr)
				if err != nil {
					return helm.Repository{}, err
				}
				return helm.Repository{URL: hr.Spec.URL, Credentials: creds, PassCredentials: hr.Spec.PassCredentials, Insecure: hr.Spec.Insecure}, nil
			}
		}
		if byName {
			return helm.Repository{}, fmt.Errorf("no HelmRepository %s/%s for %q", ns, name, ref)
		}
		return helm.Repository{URL: ref}, nil
	}
}

// failure sets the Ready condition for an error, records a Warning event, and returns the error
// to retry with (or the terminal error of a stall).
func (r *HelmChartReconciler) failure(obj *sourcev1.HelmChart, err error) error {
	if ferr := r.verificationFailure(obj, "", err); ferr != nil {
		return ferr
	}
	var reason string
	switch {
	case errors.As(err, new(*status.WaitError)): // a busy host: Ready is set already
		return err
	case errors.Is(err, helm.ErrInvalid), errors.Is(err, oci.ErrInvalid), errors.Is(err, registry.ErrProviderMismatch):
		return r.stall(obj, sourcev1.InvalidSpecReason, err.Error())
	case errors.Is(err, helm.ErrAuth), errors.Is(err, oci.ErrAuth):
		reason = sourcev1.AuthenticationFailedReason
	case errors.Is(err, helm.ErrNotFound), errors.Is(err, oci.ErrNotFound):
		reason = sourcev1.NoMatchingVersionReason
	case errors.Is(err, helm.ErrPackage), errors.Is(err, oci.ErrContent), errors.Is(err, helm.ErrIndex):
		reason = sourcev1.ChartPackageFailedReason
	case errors.Is(err, storage.ErrIO):
		reason = sourcev1.ArtifactFailedReason
	case errors.Is(err, errVerificationRequired):
		return r.refuseUnverified(obj, err.Error())
	case errors.Is(err, errSourceUnverified):
		conditions.MarkFalse(obj, sourcev1.SourceVerifiedCondition, sourcev1.VerificationRequiredReason, "%v", err)
		return status.Wait(r.events, obj, "", sourcev1.VerificationRequiredReason, "%v", err)
	case errors.Is(err, errSource):
		// Waiting, not failing: one Normal event while the wait lasts. The source's new
		// artifact reconciles this HelmChart at once; the retries are a fallback.
		return status.Wait(r.events, obj, "", sourcev1.SourceNotReadyReason, "%v", err)
	default:
		reason = sourcev1.ChartPullFailedReason
	}
	return status.Fail(r.events, obj, "", reason, err)
}

// finalize deletes the object's artifacts, then lets it go.
func (r *HelmChartReconciler) finalize(obj *sourcev1.HelmChart) error {
	if err := r.Storage.Delete(helmChartObject(obj)); err != nil {
		markFailed(obj, sourcev1.ArtifactFailedReason, "deleting artifacts: %v", err)
		return fmt.Errorf("delete artifacts: %w", err)
	}
	controllerutil.RemoveFinalizer(obj, sourcev1.SourceFinalizer)
	return nil
}

func helmChartStatus(obj *sourcev1.HelmChart) statusFields {
	return statusFields{Kind: sourcev1.HelmChartKind, Suspend: obj.Spec.Suspend,
		ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus}
}

func helmChartObject(obj *sourcev1.HelmChart) storage.Object {
	return storage.Object{Kind: sourcev1.HelmChartKind, Namespace: obj.Namespace, Name: obj.Name}
}
