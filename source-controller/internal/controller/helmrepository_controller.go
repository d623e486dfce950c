package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/proxy"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/status"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/helm"
	"github.com/plumb-dev/plumb/source-controller/internal/oci"
	"github.com/plumb-dev/plumb/source-controller/internal/storage"
)

// +kubebuilder:rbac:groups=source.plumb.dev,resources=helmrepositories,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=helmrepositories/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=helmrepositories/finalizers,verbs=update

// IndexFile is the name of the index in a HelmRepository's artifact.
const IndexFile = "index.yaml"

// HelmRepositoryReconciler publishes the checked index of a chart repository as an artifact.
type HelmRepositoryReconciler struct {
	client.Client
	// Events records Kubernetes Events on the objects.
	Events recorder.EventRecorder
	// Storage keeps and serves the artifacts.
	Storage *storage.Storage
	// ControllerName is the field owner of status patches.
	ControllerName string
	// MaxIndexSize bounds a downloaded index (default helm.MaxIndexSize).
	MaxIndexSize int64

	statusHelper
	// builds maps (URL, digest of the downloaded bytes) to the artifact written from them: an
	// unchanged download is neither parsed nor written again, and HelmRepositories on the same
	// URL share one artifact.
	builds buildCache
}

// SetupWithManager registers the reconciler: it runs on spec changes and reconcile requests.
func (r *HelmRepositoryReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts Options) error {
	r.statusHelper = newStatusHelper(r.Events, r.ControllerName, opts)
	if r.MaxIndexSize == 0 {
		r.MaxIndexSize = helm.MaxIndexSize
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.HelmRepository{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// Reconcile follows the house shape: get, defer the one status patch, finalize or set up, skip
// when suspended, then the ordered steps.
func (r *HelmRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &sourcev1.HelmRepository{}
	if found, err := status.Get(ctx, r.Client, sourcev1.HelmRepositoryKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		r.finalizeStatus(ctx, obj, helmRepoStatus(obj), patcher, &result, &retErr)
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(obj)
	}
	controllerutil.AddFinalizer(obj, sourcev1.SourceFinalizer)
	if obj.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	return r.reconcile(ctx, obj)
}

func (r *HelmRepositoryReconciler) reconcile(ctx context.Context, obj *sourcev1.HelmRepository) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		markReconciling(obj, "reconciling generation %d", obj.Generation)
	}
	if registry.IsCloud(obj.Spec.Provider) && !obj.IsOCI() {
		return ctrl.Result{}, r.stall(obj, sourcev1.InvalidSpecReason,
			fmt.Sprintf("provider %s needs type: oci; an https HelmRepository takes a secretRef", obj.Spec.Provider))
	}
	creds, err := r.credentials(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	if obj.IsOCI() {
		// Nothing to download: HelmCharts pull from the registry with these credentials. The URL
		// and credentials are checked (no request is made), and an artifact left from when the
		// repository had an index goes.
		remote, err := oci.NewRemote(strings.TrimSuffix(obj.Spec.URL, "/")+"/chart", ociCredentials(obj, creds))
		if err != nil {
			return ctrl.Result{}, r.failure(obj, "", err)
		}
		if registry.IsCloud(obj.Spec.Provider) {
			// The provider must own the registry; HelmCharts obtain its tokens when they pull.
			if err := registry.CheckProvider(obj.Spec.Provider, remote.Repo); err != nil {
				return ctrl.Result{}, r.stall(obj, sourcev1.InvalidSpecReason, err.Error())
			}
		}
		if obj.Status.Artifact != nil {
			if err := r.Storage.Delete(helmRepoObject(obj)); err != nil {
				return ctrl.Result{}, r.failure(obj, "", err)
			}
			obj.Status.Artifact = nil
		}
		markReadyMessage(obj, "OCI repository %s: charts are pulled from it by HelmCharts", obj.Spec.URL)
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
	}
	client, err := helm.Client(creds)
	if err != nil {
		return ctrl.Result{}, r.failure(obj, "", err)
	}
	opCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	release, err := r.acquireHost(opCtx, obj, obj.Spec.URL)
	if err != nil {
		return ctrl.Result{}, err
	}
	defer release()
	data, err := helm.FetchIndex(opCtx, client, obj.Spec.URL, creds, r.MaxIndexSize)
	if err != nil {
		return ctrl.Result{}, r.failure(obj, "", err)
	}
	sum := sha256.Sum256(data)
	indexURL, _ := helm.IndexURL(obj.Spec.URL) // FetchIndex checked it
	key := "helmrepo:" + indexURL + "@" + hex.EncodeToString(sum[:])
	if a := r.builds.get(key); a != nil && obj.Status.Artifact != nil && obj.Status.Artifact.Digest == a.Digest && r.Storage.Has(obj.Status.Artifact) {
		// The same bytes as the stored artifact was made from: no parse, no write.
		obj.Status.Artifact.URL = r.Storage.URL(obj.Status.Artifact)
		markReadyMessage(obj, "%s", readyMessage(obj.Status.Artifact))
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
	}
	a, err := r.build(opCtx, obj, key, data)
	if err != nil {
		return ctrl.Result{}, r.failure(obj, "", err)
	}
	changed := obj.Status.Artifact == nil || obj.Status.Artifact.Digest != a.Digest
	obj.Status.Artifact = a
	markReadyMessage(obj, "%s", readyMessage(a))
	if changed {
		r.event(obj, a.Revision, corev1.EventTypeNormal, sourcev1.SucceededReason, "%s", readyMessage(a))
		if err := r.Storage.GC(helmRepoObject(obj), a); err != nil {
			log.FromContext(ctx).Error(err, "garbage collecting old artifacts")
		}
	}
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
}

// Annotations of a HelmRepository's artifact with what its index lists, for the Ready message.
const (
	chartsMetadata   = "plumb.dev/charts"
	versionsMetadata = "plumb.dev/versions"
	skippedMetadata  = "plumb.dev/skipped-versions"
)

func readyMessage(a *meta.Artifact) string {
	msg := fmt.Sprintf("stored index of %s charts, %s versions, revision %s", a.Metadata[chartsMetadata], a.Metadata[versionsMetadata], a.Revision)
	if s := a.Metadata[skippedMetadata]; s != "" && s != "0" {
		msg += fmt.Sprintf(" (%s invalid versions left out)", s)
	}
	return msg
}

// build parses the index and writes the artifact, or adopts the one another HelmRepository
// wrote from the same download.
func (r *HelmRepositoryReconciler) build(ctx context.Context, obj *sourcev1.HelmRepository, key string, data []byte) (*meta.Artifact, error) {
	o := helmRepoObject(obj)
	var cur *meta.Artifact // read here: the flight may outlive this reconcile
	if obj.Status.Artifact != nil {
		cur = obj.Status.Artifact.DeepCopy()
	}
	a, err := r.builds.build(ctx, r.Storage, o, key, "", obj.GetTimeout(), func(context.Context) (*meta.Artifact, error) {
		idx, err := helm.ParseIndex(data)
		if err != nil {
			return nil, err
		}
		if cur != nil && cur.Revision == idx.Digest && r.Storage.Has(cur) {
			return cur, nil // after a restart: parsed once, not written again
		}
		a, err := r.Storage.Write(o, idx.Digest, func(w io.Writer) error {
			tw := artifact.NewWriter(w)
			if err := tw.File(IndexFile, false, int64(len(idx.JSON)), bytes.NewReader(idx.JSON)); err != nil {
				return err
			}
			return tw.Close()
		})
		if err != nil {
			return nil, err
		}
		a.Metadata = map[string]string{
			chartsMetadata:   fmt.Sprint(idx.Charts),
			versionsMetadata: fmt.Sprint(idx.Versions),
			skippedMetadata:  fmt.Sprint(idx.Skipped),
		}
		return a, nil
	})
	if errors.Is(err, errBuildTimeout) {
		return nil, fmt.Errorf("%w: writing the index of %s: %v", helm.ErrFetch, obj.Spec.URL, err)
	}
	return a, err
}

// credentials reads spec.secretRef.
func (r *HelmRepositoryReconciler) credentials(ctx context.Context, obj *sourcev1.HelmRepository) (helm.Credentials, error) {
	var c helm.Credentials
	if ref := obj.Spec.ProxySecretRef; ref != nil {
		px, err := proxy.FromSecret(ctx, r.Client, obj.Namespace, ref.Name)
		if err != nil {
			return c, r.failure(obj, "", err)
		}
		c.Proxy = px
	}
	ref := obj.Spec.SecretRef
	if ref == nil {
		if err := certSecret(ctx, r.Client, obj, &c); err != nil {
			return c, r.failure(obj, "", err)
		}
		return c, nil
	}
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}
	if err := r.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			err = fmt.Errorf("%w: credentials Secret %s not found", helm.ErrAuth, key)
		} else {
			err = fmt.Errorf("%w: credentials Secret %s: %v", helm.ErrAuth, key, err)
		}
		return c, r.failure(obj, "", err)
	}
	c.Username, c.Password = string(s.Data["username"]), string(s.Data["password"])
	c.CA, c.Cert, c.Key = s.Data["ca.crt"], s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if (c.Username == "") != (c.Password == "") {
		return c, r.failure(obj, "", fmt.Errorf("%w: credentials Secret %s needs both username and password", helm.ErrAuth, key))
	}
	c.DockerConfig = s.Data[corev1.DockerConfigJsonKey]
	if err := certSecret(ctx, r.Client, obj, &c); err != nil {
		return c, r.failure(obj, "", err)
	}
	return c, nil
}

// certSecret reads spec.certSecretRef of a HelmRepository into c: its `ca.crt`, `tls.crt` and
// `tls.key` replace those of spec.secretRef, as in Flux. A client certificate needs its key.
func certSecret(ctx context.Context, reader client.Reader, src *sourcev1.HelmRepository, c *helm.Credentials) error {
	ref := src.Spec.CertSecretRef
	if ref == nil {
		return nil
	}
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: src.Namespace, Name: ref.Name}
	if err := reader.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%w: certSecretRef: TLS Secret %s not found", helm.ErrAuth, key)
		}
		return fmt.Errorf("%w: certSecretRef: TLS Secret %s: %v", helm.ErrAuth, key, err)
	}
	ca, crt, tlsKey := s.Data["ca.crt"], s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(ca) == 0 && len(crt) == 0 && len(tlsKey) == 0 {
		return fmt.Errorf("%w: certSecretRef: TLS Secret %s has none of ca.crt, tls.crt and tls.key", helm.ErrAuth, key)
	}
	if (len(crt) == 0) != (len(tlsKey) == 0) {
		return fmt.Errorf("%w: certSecretRef: TLS Secret %s needs both tls.crt and tls.key for a client certificate", helm.ErrAuth, key)
	}
	if len(ca) > 0 {
		c.CA = ca
	}
	if len(crt) > 0 {
		c.Cert, c.Key = crt, tlsKey
	}
	return nil
}

// failure sets the Ready condition for an error, records a Warning event, and returns the error
// to retry with (or the terminal error of a stall).
func (r *HelmRepositoryReconciler) failure(obj *sourcev1.HelmRepository, revision string, err error) error {
	var reason string
	switch {
	case errors.Is(err, helm.ErrInvalid), errors.Is(err, oci.ErrInvalid):
		return r.stall(obj, sourcev1.InvalidSpecReason, err.Error())
	case errors.Is(err, proxy.ErrProxy):
		reason = sourcev1.ProxyFailedReason
	case errors.Is(err, helm.ErrAuth), errors.Is(err, oci.ErrAuth):
		reason = sourcev1.AuthenticationFailedReason
	case errors.Is(err, helm.ErrIndex):
		reason = sourcev1.IndexInvalidReason
	case errors.Is(err, storage.ErrIO):
		reason = sourcev1.ArtifactFailedReason
	default:
		reason = sourcev1.IndexFetchFailedReason
	}
	return status.Fail(r.events, obj, revision, reason, err)
}

// finalize deletes the object's artifacts, then lets it go.
func (r *HelmRepositoryReconciler) finalize(obj *sourcev1.HelmRepository) error {
	if err := r.Storage.Delete(helmRepoObject(obj)); err != nil {
		markFailed(obj, sourcev1.ArtifactFailedReason, "deleting artifacts: %v", err)
		return fmt.Errorf("delete artifacts: %w", err)
	}
	r.builds.forget(helmRepoObject(obj))
	controllerutil.RemoveFinalizer(obj, sourcev1.SourceFinalizer)
	return nil
}

func helmRepoStatus(obj *sourcev1.HelmRepository) statusFields {
	return statusFields{Kind: sourcev1.HelmRepositoryKind, Suspend: obj.Spec.Suspend,
		ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus}
}

func helmRepoObject(obj *sourcev1.HelmRepository) storage.Object {
	return storage.Object{Kind: sourcev1.HelmRepositoryKind, Namespace: obj.Namespace, Name: obj.Name}
}
