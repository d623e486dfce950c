package controller

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/fluxcd/pkg/cache"
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
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
	"github.com/plumb-dev/plumb/source-controller/internal/git"
	"github.com/plumb-dev/plumb/source-controller/internal/ignore"
	"github.com/plumb-dev/plumb/source-controller/internal/storage"
)

// +kubebuilder:rbac:groups=source.plumb.dev,resources=buckets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=buckets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=buckets/finalizers,verbs=update

// BucketReconciler publishes the objects of a bucket (S3-compatible, Google Cloud Storage or
// Azure Blob Storage) as an artifact.
type BucketReconciler struct {
	client.Client
	// Events records Kubernetes Events on the objects.
	Events recorder.EventRecorder
	// Storage keeps and serves the artifacts.
	Storage *storage.Storage
	// ControllerName is the field owner of status patches.
	ControllerName string
	// Limits bound the objects of one artifact (default artifact.DefaultLimits).
	Limits *artifact.Limits
	// Cloud says whether serviceAccountName may name the cloud identity (nil: it may not).
	Cloud *registry.Cloud

	statusHelper
	// tokens caches the credentials of the workload identities until shortly before they expire.
	tokens *cache.TokenCache
}

// SetupWithManager registers the reconciler: it runs on spec changes and reconcile requests.
func (r *BucketReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts Options) error {
	r.statusHelper = newStatusHelper(r.Events, r.ControllerName, opts)
	tokens, err := cache.NewTokenCache(registry.DefaultTokenCacheSize)
	if err != nil {
		return err
	}
	r.tokens = tokens
	return ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.Bucket{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// Reconcile follows the house shape: get, defer the one status patch, finalize or set up, skip
// when suspended, then the ordered steps.
func (r *BucketReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &sourcev1.Bucket{}
	if found, err := status.Get(ctx, r.Client, sourcev1.BucketKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		r.finalizeStatus(ctx, obj, bucketStatus(obj), patcher, &result, &retErr)
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

func (r *BucketReconciler) reconcile(ctx context.Context, obj *sourcev1.Bucket) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		markReconciling(obj, "reconciling generation %d", obj.Generation)
	}
	c, err := r.bucketClient(ctx, obj)
	if err != nil {
		return ctrl.Result{}, r.failure(obj, "", err)
	}
	opCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	release, err := r.acquireHost(opCtx, obj, obj.Spec.Endpoint)
	if err != nil {
		return ctrl.Result{}, err
	}
	defer release()

	listing, err := r.list(opCtx, c, obj)
	if err != nil {
		return ctrl.Result{}, r.failure(obj, "", err)
	}
	if r.upToDate(obj, listing.digest) {
		obj.Status.Artifact.URL = r.Storage.URL(obj.Status.Artifact)
		markReady(obj, obj.Status.Artifact.Revision)
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
	}
	objects, err := r.published(opCtx, c, obj, listing)
	if err != nil {
		return ctrl.Result{}, r.failure(obj, "", err)
	}
	revision := bucket.Digest(objects)
	if a := obj.Status.Artifact; a != nil && a.Revision == revision && r.settled(obj) && r.Storage.Has(a) {
		// Only ignored objects changed: nothing to download.
		obj.Status.ObservedIndex = listing.digest
		a.URL = r.Storage.URL(a)
		markReady(obj, revision)
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
	}
	markReconciling(obj, "downloading %d objects for revision %s", len(objects), revision)
	lim := artifact.DefaultLimits
	if r.Limits != nil {
		lim = *r.Limits
	}
	a, err := r.Storage.Write(bucketObject(obj), revision, func(w io.Writer) error {
		return c.Write(opCtx, objects, lim, w)
	})
	if err != nil {
		return ctrl.Result{}, r.failure(obj, revision, err)
	}
	obj.Status.Artifact = a
	obj.Status.ObservedIgnore = obj.Spec.Ignore
	obj.Status.ObservedPrefix = obj.Spec.Prefix
	obj.Status.ObservedIndex = listing.digest
	markReady(obj, revision)
	r.event(obj, revision, corev1.EventTypeNormal, sourcev1.SucceededReason, "stored artifact with %d objects for revision %s", len(objects), revision)
	if err := r.Storage.GC(bucketObject(obj), a); err != nil {
		log.FromContext(ctx).Error(err, "garbage collecting old artifacts")
	}
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
}

// listing is every object under the prefix, and the .sourceignore object when there is one.
type listing struct {
	objects []bucket.Object
	ignore  *bucket.Object
	// digest covers both: when it is unchanged, so is the artifact.
	digest string
}

// list lists the objects under the prefix and finds the .sourceignore object at the root of the
// bucket: in the listing without a prefix, otherwise with one HEAD request.
func (r *BucketReconciler) list(ctx context.Context, c *bucket.Client, obj *sourcev1.Bucket) (listing, error) {
	var l listing
	var err error
	if l.objects, err = c.List(ctx, obj.Spec.Prefix); err != nil {
		return l, err
	}
	index := l.objects
	if obj.Spec.Prefix == "" {
		for i := range l.objects {
			if l.objects[i].Key == bucket.SourceIgnoreFile {
				l.ignore = &l.objects[i]
			}
		}
	} else {
		o, found, err := c.Stat(ctx, bucket.SourceIgnoreFile)
		if err != nil {
			return l, err
		}
		if found {
			l.ignore = &o
			index = append([]bucket.Object{o}, index...)
		}
	}
	l.digest = bucket.Digest(index)
	return l, nil
}

// published reads the ignore rules and returns the objects that go into the artifact.
func (r *BucketReconciler) published(ctx context.Context, c *bucket.Client, obj *sourcev1.Bucket, l listing) ([]bucket.Object, error) {
	patterns := git.DefaultIgnore
	if obj.Spec.Ignore != nil {
		patterns = *obj.Spec.Ignore
	}
	if l.ignore != nil {
		text, err := c.ReadSmall(ctx, *l.ignore)
		if err != nil {
			return nil, err
		}
		patterns += "\n" + text
	}
	m := ignore.New(patterns)
	out := make([]bucket.Object, 0, len(l.objects))
	for _, o := range l.objects {
		if !m.Ignored(o.Key) {
			out = append(out, o)
		}
	}
	return out, nil
}

// settled reports whether the artifact was built with the current ignore and prefix.
func (r *BucketReconciler) settled(obj *sourcev1.Bucket) bool {
	return equalPtr(obj.Status.ObservedIgnore, obj.Spec.Ignore) && obj.Status.ObservedPrefix == obj.Spec.Prefix
}

// upToDate is the no-op fast path: the listing is the one the artifact was built from, with
// the same ignore and prefix, and the artifact is still on disk.
func (r *BucketReconciler) upToDate(obj *sourcev1.Bucket, index string) bool {
	a := obj.Status.Artifact
	return a != nil && obj.Status.ObservedIndex == index && r.settled(obj) && r.Storage.Has(a)
}

// failure sets the Ready condition for an error of a step, records a Warning event, and returns
// the error to retry with (or the terminal error of a stall).
func (r *BucketReconciler) failure(obj *sourcev1.Bucket, revision string, err error) error {
	var reason string
	switch {
	case errors.Is(err, errUnsupported):
		return r.stall(obj, sourcev1.ProviderNotSupportedReason, err.Error())
	case errors.Is(err, bucket.ErrInvalid):
		return r.stall(obj, sourcev1.InvalidSpecReason, err.Error())
	case errors.Is(err, registry.ErrObjectLevelIdentityDisabled):
		return r.stall(obj, sourcev1.FeatureGateDisabledReason, err.Error())
	case errors.Is(err, proxy.ErrProxy):
		reason = sourcev1.ProxyFailedReason
	case errors.Is(err, bucket.ErrAuth):
		reason = sourcev1.AuthenticationFailedReason
	case errors.Is(err, bucket.ErrNotFound):
		reason = sourcev1.BucketNotFoundReason
	case errors.Is(err, bucket.ErrContent):
		reason = sourcev1.BuildFailedReason
	case errors.Is(err, storage.ErrIO):
		reason = sourcev1.ArtifactFailedReason
	default:
		reason = sourcev1.BucketOperationFailedReason
	}
	return status.Fail(r.events, obj, revision, reason, err)
}

// finalize deletes the object's artifacts, then lets it go.
func (r *BucketReconciler) finalize(obj *sourcev1.Bucket) error {
	if err := r.Storage.Delete(bucketObject(obj)); err != nil {
		markFailed(obj, sourcev1.ArtifactFailedReason, "deleting artifacts: %v", err)
		return fmt.Errorf("delete artifacts: %w", err)
	}
	controllerutil.RemoveFinalizer(obj, sourcev1.SourceFinalizer)
	return nil
}

func bucketStatus(obj *sourcev1.Bucket) statusFields {
	return statusFields{Kind: sourcev1.BucketKind, Suspend: obj.Spec.Suspend,
		ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus}
}

func bucketObject(obj *sourcev1.Bucket) storage.Object {
	return storage.Object{Kind: sourcev1.BucketKind, Namespace: obj.Namespace, Name: obj.Name}
}
