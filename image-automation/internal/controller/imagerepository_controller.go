package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/image-automation/internal/tags"
	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/proxy"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/status"
)

// +kubebuilder:rbac:groups=image.plumb.dev,resources=imagerepositories,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=image.plumb.dev,resources=imagerepositories/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=image.plumb.dev,resources=imagerepositories/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Finalizer removes what an object keeps on the controller's disk (stored tags, a working copy)
// before it goes.
const Finalizer = "plumb.dev/finalizer"

// ImageRepositoryReconciler lists the tags of image repositories.
type ImageRepositoryReconciler struct {
	client.Client
	// APIReader reads Secrets and ServiceAccounts, which are not cached.
	APIReader client.Reader
	Events    recorder.EventRecorder
	Tags      *tags.Store
	// ControllerName is the field owner of status patches.
	ControllerName string
	// Cloud obtains and caches the credentials of spec.provider aws, azure and gcp (nil: a
	// process-wide one without object-level identity).
	Cloud *registry.Cloud
	// Clock tells the time scans are due by (nil: the real clock).
	Clock clock.PassiveClock

	hosts     *hostlimit.Limiter
	busyRetry time.Duration
}

// SetupWithManager registers the reconciler: it runs on spec changes, reconcile requests and
// its interval.
func (r *ImageRepositoryReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts Options) error {
	r.hosts, r.busyRetry = opts.Hosts, opts.HostBusyRetry
	return ctrl.NewControllerManagedBy(mgr).
		For(&imagev1.ImageRepository{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// Reconcile scans the repository when its interval has passed, its spec changed or a scan was
// requested, and keeps the tags on disk.
func (r *ImageRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &imagev1.ImageRepository{}
	if found, err := status.Get(ctx, r.Client, imagev1.ImageRepositoryKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		f := status.Fields{Kind: imagev1.ImageRepositoryKind, Suspend: obj.Spec.Suspend,
			ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus}
		if conditions.GetReason(obj, meta.ReadyCondition) == imagev1.HostBusyReason {
			f.WaitInterval = r.busyRetry
		}
		status.Finish(ctx, obj, f, patcher, r.ControllerName, &result, &retErr)
	}()
	if !obj.DeletionTimestamp.IsZero() {
		if err := r.Tags.Delete(req.NamespacedName); err != nil {
			return ctrl.Result{}, err
		}
		controllerutil.RemoveFinalizer(obj, Finalizer)
		return ctrl.Result{}, nil
	}
	controllerutil.AddFinalizer(obj, Finalizer)
	if obj.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	return r.reconcile(ctx, obj)
}

func (r *ImageRepositoryReconciler) reconcile(ctx context.Context, obj *imagev1.ImageRepository) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(obj)
	exclude := obj.GetExclusionList()
	excl, err := compileAll(exclude)
	if err != nil {
		return ctrl.Result{}, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, "exclusionList: "+err.Error())
	}
	creds, err := credentials(ctx, r.APIReader, obj)
	if err != nil {
		reason := imagev1.AuthenticationFailedReason
		if errors.Is(err, proxy.ErrProxy) {
			reason = imagev1.ProxyFailedReason
		}
		return ctrl.Result{}, status.Fail(r.Events, obj, "", reason, err)
	}
	repo, err := name.NewRepository(obj.Spec.Image, creds.NameOptions()...)
	if err != nil {
		return ctrl.Result{}, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, fmt.Sprintf("image %q is not a repository name: %v", obj.Spec.Image, err))
	}
	if err := cloudLogin(ctx, r.Cloud, r.Client, obj, repo, &creds); err != nil {
		switch {
		case errors.Is(err, registry.ErrProviderMismatch):
			return ctrl.Result{}, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, err.Error())
		case errors.Is(err, registry.ErrObjectLevelIdentityDisabled):
			return ctrl.Result{}, status.Stall(r.Events, obj, imagev1.FeatureGateDisabledReason, err.Error())
		}
		return ctrl.Result{}, status.Fail(r.Events, obj, "", imagev1.AuthenticationFailedReason, err)
	}

	// A scan costs a registry round trip per page of tags: it runs only when due.
	if next, due := r.scanDue(obj, exclude); !due {
		conditions.MarkTrue(obj, meta.ReadyCondition, imagev1.SucceededReason, "%d tags", obj.Status.LastScanResult.TagCount)
		return ctrl.Result{RequeueAfter: next}, nil
	}
	if obj.Generation != obj.Status.ObservedGeneration {
		conditions.MarkReconciling(obj, imagev1.ProgressingReason, "scanning for generation %d", obj.Generation)
	}
	opts, err := registry.Options(repo, creds)
	if err != nil {
		return ctrl.Result{}, status.Fail(r.Events, obj, "", imagev1.AuthenticationFailedReason, err)
	}
	scanCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	// A registry that hangs keeps its own slots, not the workers: a busy one is waited for
	// without holding a worker.
	release, err := r.hosts.Acquire(scanCtx, hostlimit.Key(repo.RegistryStr()))
	if errors.Is(err, hostlimit.ErrBusy) {
		return ctrl.Result{}, status.Wait(r.Events, obj, "", imagev1.HostBusyReason, "%v", err)
	} else if err != nil {
		return ctrl.Result{}, err
	}
	defer release()
	all, err := remote.List(repo, append(opts, remote.WithContext(scanCtx))...)
	if err != nil {
		reason, err := classify(err, "repository "+repo.Name())
		return ctrl.Result{}, status.Fail(r.Events, obj, "", reason, err)
	}
	kept := all[:0]
	for _, t := range all {
		if !anyMatch(excl, t) {
			kept = append(kept, t)
		}
	}
	list, err := r.Tags.Put(key, obj.Spec.Image, repo.Name(), kept)
	if err != nil {
		return ctrl.Result{}, status.Fail(r.Events, obj, "", imagev1.ScanFailedReason, err)
	}
	prev := obj.Status.LastScanResult
	obj.Status.CanonicalImageName = repo.Name()
	obj.Status.LastScanResult = &imagev1.ScanResult{TagCount: len(list.Tags), ScanTime: metav1.NewTime(r.now()), LatestTags: latest(list.Tags, 10), Revision: list.Revision}
	obj.Status.ObservedExclusionList = slices.Clone(exclude)
	conditions.MarkTrue(obj, meta.ReadyCondition, imagev1.SucceededReason, "%d tags", len(list.Tags))
	if prev == nil || prev.Revision != list.Revision {
		events.Record(r.Events, obj, "", corev1.EventTypeNormal, imagev1.SucceededReason, "found %d tags", len(list.Tags))
	}
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// scanDue says whether to scan now, or how long until the next scan. A scan is due for a new
// generation, a changed exclusion list, a request, a failed last attempt, an interval passed, or
// tags missing from disk (a restart with an empty volume).
func (r *ImageRepositoryReconciler) scanDue(obj *imagev1.ImageRepository, exclude []string) (time.Duration, bool) {
	last := obj.Status.LastScanResult
	if last == nil || obj.Generation != obj.Status.ObservedGeneration || !slices.Equal(exclude, obj.Status.ObservedExclusionList) ||
		!conditions.IsReady(obj) {
		return 0, true
	}
	if v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations()); ok && v != obj.Status.LastHandledReconcileAt {
		return 0, true
	}
	if !r.Tags.Has(client.ObjectKeyFromObject(obj), last.Revision) {
		return 0, true
	}
	// The scan time is the wall clock's, read back from status: it has no monotonic reading, so
	// a clock that jumped since moves the next scan. Ahead, the scan is due at once, at the
	// requeue the work queue (on the monotonic clock) spreads as before. Back, the last scan
	// lies in this clock's future: waiting for it would hold the next scan back by the jump, an
	// hour for an hour, so the scan is due too.
	interval := obj.Spec.Interval.Duration
	wait := last.ScanTime.Add(interval).Sub(r.now())
	if wait <= 0 || wait > interval {
		return 0, true
	}
	return wait, false
}

// now is the time by r's clock.
func (r *ImageRepositoryReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// credentials reads an ImageRepository's secretRef, the ServiceAccount's image pull secrets (with
// provider generic),
// certSecretRef and proxySecretRef.
func credentials(ctx context.Context, reader client.Reader, obj *imagev1.ImageRepository) (registry.Credentials, error) {
	refs := registry.Refs{Namespace: obj.Namespace, ServiceAccount: obj.Spec.ServiceAccountName, Provider: obj.Spec.Provider, Insecure: obj.Spec.Insecure}
	if ref := obj.Spec.SecretRef; ref != nil {
		refs.SecretRef = ref.Name
	}
	if ref := obj.Spec.CertSecretRef; ref != nil {
		refs.CertSecretRef = ref.Name
	}
	creds, err := registry.CredentialsFrom(ctx, reader, refs)
	if err != nil {
		return creds, err
	}
	if ref := obj.Spec.ProxySecretRef; ref != nil {
		creds.Proxy, err = proxy.FromSecret(ctx, reader, obj.Namespace, ref.Name)
	}
	return creds, err
}

// cloudLogin adds the credentials of the ImageRepository's cloud provider, when it names one
// and no secretRef (which wins, as in Flux). The identity is the controller's, or with
// serviceAccountName that ServiceAccount's.
func cloudLogin(ctx context.Context, cloud *registry.Cloud, kube client.Client, obj *imagev1.ImageRepository, repo name.Repository, creds *registry.Credentials) error {
	if !registry.IsCloud(obj.Spec.Provider) || obj.Spec.SecretRef != nil {
		return nil
	}
	id := registry.Identity{Provider: obj.Spec.Provider, Namespace: obj.Namespace, ServiceAccount: obj.Spec.ServiceAccountName,
		Kind: imagev1.ImageRepositoryKind, Name: obj.Name, Proxy: creds.Proxy}
	loginCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	return cloud.Login(loginCtx, kube, repo, id, creds)
}

// classify turns a registry error about what ("repository <image>" or "tag <image>:<tag>") into
// a reason and a message a person can act on.
func classify(err error, what string) (string, error) {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return imagev1.AuthenticationFailedReason, fmt.Errorf("registry refused the credentials for %s (%d)", what, te.StatusCode)
		case http.StatusNotFound:
			return imagev1.ImageNotFoundReason, fmt.Errorf("registry has no %s", what)
		}
	}
	if errors.Is(err, proxy.ErrProxy) {
		return imagev1.ProxyFailedReason, fmt.Errorf("reading %s: %w", what, err)
	}
	if errors.Is(err, registry.ErrAuth) {
		return imagev1.AuthenticationFailedReason, err
	}
	return imagev1.ScanFailedReason, fmt.Errorf("reading %s: %w", what, err)
}

// latest returns the n greatest tags in lexical order, greatest first.
func latest(sorted []string, n int) []string {
	out := make([]string, 0, n)
	for i := len(sorted) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, sorted[i])
	}
	return out
}

func compileAll(exprs []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(exprs))
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("expression %q: %v", e, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}
