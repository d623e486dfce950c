package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
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
	"github.com/plumb-dev/plumb/source-controller/internal/oci"
	"github.com/plumb-dev/plumb/source-controller/internal/storage"
	"github.com/plumb-dev/plumb/source-controller/internal/verify"
)

// +kubebuilder:rbac:groups=source.plumb.dev,resources=ocirepositories,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=ocirepositories/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=ocirepositories/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create

// OCIRepositoryReconciler publishes a layer of an OCI artifact as an artifact.
type OCIRepositoryReconciler struct {
	client.Client
	// Events records Kubernetes Events on the objects.
	Events recorder.EventRecorder
	// Storage keeps and serves the artifacts.
	Storage *storage.Storage
	// ControllerName is the field owner of status patches.
	ControllerName string
	// Limits bound a layer and what it unpacks to (default artifact.DefaultLimits).
	Limits *artifact.Limits
	// Cloud obtains and caches the credentials of spec.provider aws, azure and gcp (nil: a
	// process-wide one without object-level identity).
	Cloud *registry.Cloud

	statusHelper
	// verified remembers the digests whose signatures verified, by settings.
	verified *verify.Cache
	// builds shares one pull between OCIRepositories that want the same layer of the same
	// manifest: the first writes it, the others hard link it.
	builds buildCache
	// verificationRequired refuses OCIRepositories without spec.verify (--require-verification).
	verificationRequired bool
}

// SetupWithManager registers the reconciler: it runs on spec changes and reconcile requests.
func (r *OCIRepositoryReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts Options) error {
	r.statusHelper = newStatusHelper(r.Events, r.ControllerName, opts)
	r.verified = verify.NewCache(verifiedCacheSize)
	r.verificationRequired = opts.RequireVerification[sourcev1.OCIRepositoryKind]
	return ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.OCIRepository{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// Reconcile follows the house shape: get, defer the one status patch, finalize or set up, skip
// when suspended, then the ordered steps.
func (r *OCIRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &sourcev1.OCIRepository{}
	if found, err := status.Get(ctx, r.Client, sourcev1.OCIRepositoryKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		r.finalizeStatus(ctx, obj, ociStatus(obj), patcher, &result, &retErr)
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(obj)
	}
	controllerutil.AddFinalizer(obj, sourcev1.SourceFinalizer)
	if obj.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if r.verificationRequired && obj.Spec.Verify == nil {
		return ctrl.Result{}, r.refuseUnverified(obj, verificationRequiredMessage(sourcev1.OCIRepositoryKind, ociVerifyHowTo))
	}
	return r.reconcile(ctx, obj)
}

func (r *OCIRepositoryReconciler) reconcile(ctx context.Context, obj *sourcev1.OCIRepository) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		markReconciling(obj, "reconciling generation %d", obj.Generation)
	}
	remote, err := r.remote(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	opCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	release, err := r.acquireHost(opCtx, obj, obj.Spec.URL)
	if err != nil {
		return ctrl.Result{}, err
	}
	defer release()
	ref := obj.GetRef()
	res, err := remote.Resolve(opCtx, oci.Ref{Tag: ref.Tag, SemVer: ref.SemVer, Filter: ref.SemverFilter, Digest: ref.Digest})
	if err != nil {
		return ctrl.Result{}, r.failure(obj, "", err)
	}
	if err := r.verify(opCtx, obj, remote, res); err != nil {
		return ctrl.Result{}, err
	}
	sel := obj.GetLayerSelector()
	if r.upToDate(obj, res.Revision, sel) {
		obj.Status.Artifact.URL = r.Storage.URL(obj.Status.Artifact)
		markReady(obj, res.Revision)
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
	}
	markReconciling(obj, "pulling revision %s", res.Revision)
	a, err := r.build(opCtx, obj, remote, res, sel)
	if err != nil {
		return ctrl.Result{}, r.failure(obj, res.Revision, err)
	}
	obj.Status.Artifact = a
	obj.Status.ObservedIgnore = obj.Spec.Ignore
	obj.Status.ObservedLayerSelector = &sel
	markReady(obj, res.Revision)
	r.event(obj, res.Revision, corev1.EventTypeNormal, sourcev1.SucceededReason, "stored artifact for revision %s", res.Revision)
	if err := r.Storage.GC(ociObject(obj), a); err != nil {
		log.FromContext(ctx).Error(err, "garbage collecting old artifacts")
	}
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
}

// verify checks the signature of the resolved digest with spec.verify before anything of it is
// written: a refusal keeps the last verified artifact in service.
func (r *OCIRepositoryReconciler) verify(ctx context.Context, obj *sourcev1.OCIRepository, remote *oci.Remote, res oci.Resolved) error {
	if obj.Spec.Verify == nil {
		conditions.Delete(obj, sourcev1.SourceVerifiedCondition)
		return nil
	}
	v, err := verifyArtifact(ctx, r.Client, r.verified, obj.Namespace, requested(obj, obj.Status.LastHandledReconcileAt), obj.Spec.Verify, remote, res.Digest)
	if err != nil {
		if ferr := r.verificationFailure(obj, res.Revision, err); ferr != nil {
			return ferr
		}
		return r.failure(obj, res.Revision, err)
	}
	markVerified(obj, res.Revision, v)
	return nil
}

// remote reads the credentials (secretRef, then the ServiceAccount's image pull secrets, or a
// cloud provider's when no secretRef is set) and the TLS Secret, and prepares the repository.
func (r *OCIRepositoryReconciler) remote(ctx context.Context, obj *sourcev1.OCIRepository) (*oci.Remote, error) {
	refs := registry.Refs{Namespace: obj.Namespace, ServiceAccount: obj.Spec.ServiceAccountName, Provider: obj.Spec.Provider, Insecure: obj.Spec.Insecure}
	if ref := obj.Spec.SecretRef; ref != nil {
		refs.SecretRef = ref.Name
	}
	if ref := obj.Spec.CertSecretRef; ref != nil {
		refs.CertSecretRef = ref.Name
	}
	creds, err := registry.CredentialsFrom(ctx, r.Client, refs)
	if err != nil {
		return nil, r.failure(obj, "", err)
	}
	if ref := obj.Spec.ProxySecretRef; ref != nil {
		if creds.Proxy, err = proxy.FromSecret(ctx, r.Client, obj.Namespace, ref.Name); err != nil {
			return nil, r.failure(obj, "", err)
		}
	}
	if registry.IsCloud(obj.Spec.Provider) && obj.Spec.SecretRef == nil {
		// As in Flux, a secretRef wins over the provider.
		repo, err := oci.ParseURL(obj.Spec.URL, creds)
		if err != nil {
			return nil, r.failure(obj, "", err)
		}
		id := registry.Identity{Provider: obj.Spec.Provider, Namespace: obj.Namespace, ServiceAccount: obj.Spec.ServiceAccountName,
			Kind: sourcev1.OCIRepositoryKind, Name: obj.Name, Proxy: creds.Proxy}
		loginCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
		defer cancel()
		if err := r.Cloud.Login(loginCtx, r.Client, repo, id, &creds); err != nil {
			return nil, r.failure(obj, "", err)
		}
	}
	remote, err := oci.NewRemote(obj.Spec.URL, creds)
	if err != nil {
		return nil, r.failure(obj, "", err)
	}
	return remote, nil
}

// failure sets the Ready condition for an error of a step, records a Warning event, and returns
// the error to retry with (or the terminal error of a stall).
func (r *OCIRepositoryReconciler) failure(obj *sourcev1.OCIRepository, revision string, err error) error {
	var reason string
	switch {
	case errors.Is(err, oci.ErrInvalid):
		return r.stall(obj, sourcev1.InvalidSpecReason, err.Error())
	case errors.Is(err, registry.ErrProviderMismatch):
		return r.stall(obj, sourcev1.InvalidSpecReason, err.Error())
	case errors.Is(err, registry.ErrObjectLevelIdentityDisabled):
		return r.stall(obj, sourcev1.FeatureGateDisabledReason, err.Error())
	case errors.Is(err, proxy.ErrProxy):
		reason = sourcev1.ProxyFailedReason
	case errors.Is(err, oci.ErrAuth):
		reason = sourcev1.AuthenticationFailedReason
	case errors.Is(err, oci.ErrNotFound):
		reason = sourcev1.NoMatchingVersionReason
	case errors.Is(err, oci.ErrContent):
		reason = sourcev1.BuildFailedReason
	case errors.Is(err, storage.ErrIO):
		reason = sourcev1.ArtifactFailedReason
	default:
		reason = sourcev1.OCIOperationFailedReason
	}
	return status.Fail(r.events, obj, revision, reason, err)
}

// upToDate is the no-op fast path: the stored artifact has the revision, was built with the
// current layer selector and ignore, and is still on disk.
func (r *OCIRepositoryReconciler) upToDate(obj *sourcev1.OCIRepository, revision string, sel sourcev1.OCILayerSelector) bool {
	s := obj.Status
	return s.Artifact != nil && s.Artifact.Revision == revision && r.Storage.Has(s.Artifact) &&
		equalPtr(s.ObservedIgnore, obj.Spec.Ignore) && s.ObservedLayerSelector != nil && *s.ObservedLayerSelector == sel
}

// build writes the artifact, or adopts an identical one another OCIRepository already wrote.
func (r *OCIRepositoryReconciler) build(ctx context.Context, obj *sourcev1.OCIRepository, remote *oci.Remote, res oci.Resolved, sel sourcev1.OCILayerSelector) (*meta.Artifact, error) {
	o := ociObject(obj)
	key := ociBuildKey(obj, res, sel)
	ignore := ""
	if obj.Spec.Ignore != nil {
		ignore = *obj.Spec.Ignore
	}
	layer := oci.Layer{MediaType: sel.MediaType, Copy: sel.Operation == sourcev1.OCILayerCopy, Ignore: ignore}
	lim := artifact.DefaultLimits
	if r.Limits != nil {
		lim = *r.Limits
	}
	a, err := r.builds.build(ctx, r.Storage, o, key, res.Revision, obj.GetTimeout(), func(bctx context.Context) (*meta.Artifact, error) {
		return r.Storage.Write(o, res.Revision, func(w io.Writer) error {
			return remote.Write(bctx, res, layer, lim, w)
		})
	})
	if errors.Is(err, errBuildTimeout) {
		return nil, fmt.Errorf("pulling revision %s: %w", res.Revision, err)
	}
	return a, err
}

// finalize deletes the object's artifacts, then lets it go.
func (r *OCIRepositoryReconciler) finalize(obj *sourcev1.OCIRepository) error {
	if err := r.Storage.Delete(ociObject(obj)); err != nil {
		markFailed(obj, sourcev1.ArtifactFailedReason, "deleting artifacts: %v", err)
		return fmt.Errorf("delete artifacts: %w", err)
	}
	r.builds.forget(ociObject(obj))
	controllerutil.RemoveFinalizer(obj, sourcev1.SourceFinalizer)
	return nil
}

func ociStatus(obj *sourcev1.OCIRepository) statusFields {
	return statusFields{Kind: sourcev1.OCIRepositoryKind, Suspend: obj.Spec.Suspend,
		ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus}
}

func ociObject(obj *sourcev1.OCIRepository) storage.Object {
	return storage.Object{Kind: sourcev1.OCIRepositoryKind, Namespace: obj.Namespace, Name: obj.Name}
}

// ociBuildKey identifies the content of an artifact before it is written: the repository, the
// manifest digest and what is taken of it.
func ociBuildKey(obj *sourcev1.OCIRepository, res oci.Resolved, sel sourcev1.OCILayerSelector) string {
	b, _ := json.Marshal(struct {
		URL, Digest string
		Layer       sourcev1.OCILayerSelector
		Ignore      *string
	}{obj.Spec.URL, res.Digest, sel, obj.Spec.Ignore})
	sum := sha256.Sum256(b)
	return "oci:" + hex.EncodeToString(sum[:])
}
