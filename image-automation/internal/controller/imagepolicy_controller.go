package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/image-automation/internal/policy"
	"github.com/plumb-dev/plumb/image-automation/internal/tags"
	"github.com/plumb-dev/plumb/shared/events"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/status"
)

// +kubebuilder:rbac:groups=image.plumb.dev,resources=imagepolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=image.plumb.dev,resources=imagepolicies/status,verbs=get;update;patch

// repositoryIndex indexes ImagePolicies by the namespace/name of their ImageRepository.
const repositoryIndex = ".spec.imageRepositoryRef"

// ImagePolicyReconciler chooses the latest tag of a repository for each ImagePolicy.
type ImagePolicyReconciler struct {
	client.Client
	// APIReader reads Secrets and ServiceAccounts for digest look-ups.
	APIReader client.Reader
	Events    recorder.EventRecorder
	Tags      *tags.Store
	// ControllerName is the field owner of status patches.
	ControllerName string
	// Cloud obtains the credentials of the ImageRepository's cloud provider for digest
	// look-ups; it shares its tokens with the scans when it is the same Cloud.
	Cloud *registry.Cloud
}

// SetupWithManager registers the reconciler: it runs on spec changes, reconcile requests, and
// when its ImageRepository's tags change.
func (r *ImagePolicyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &imagev1.ImagePolicy{}, repositoryIndex, func(o client.Object) []string {
		p := o.(*imagev1.ImagePolicy)
		return []string{repositoryKey(p).String()}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&imagev1.ImagePolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		Watches(&imagev1.ImageRepository{}, handler.EnqueueRequestsFromMapFunc(r.policiesOf),
			builder.WithPredicates(scanChanged{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// scanChanged passes an ImageRepository whose tags, readiness or spec (accessFrom) changed.
type scanChanged struct{ predicate.Funcs }

func (scanChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*imagev1.ImageRepository)
	n, ok2 := e.ObjectNew.(*imagev1.ImageRepository)
	if !ok1 || !ok2 {
		return false
	}
	rev := func(r *imagev1.ImageRepository) string {
		if r.Status.LastScanResult == nil {
			return ""
		}
		return r.Status.LastScanResult.Revision
	}
	return rev(o) != rev(n) || conditions.IsReady(o) != conditions.IsReady(n) || o.Generation != n.Generation ||
		o.Status.CanonicalImageName != n.Status.CanonicalImageName
}

func (r *ImagePolicyReconciler) policiesOf(ctx context.Context, o client.Object) []reconcile.Request {
	var list imagev1.ImagePolicyList
	if err := r.List(ctx, &list, client.MatchingFields{repositoryIndex: client.ObjectKeyFromObject(o).String()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
	}
	return out
}

func repositoryKey(p *imagev1.ImagePolicy) types.NamespacedName {
	ns := p.Spec.ImageRepositoryRef.Namespace
	if ns == "" {
		ns = p.Namespace
	}
	return types.NamespacedName{Namespace: ns, Name: p.Spec.ImageRepositoryRef.Name}
}

// Reconcile chooses the latest tag from the repository's stored tags.
func (r *ImagePolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &imagev1.ImagePolicy{}
	if found, err := status.Get(ctx, r.Client, imagev1.ImagePolicyKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		status.Finish(ctx, obj, status.Fields{Kind: imagev1.ImagePolicyKind, Suspend: obj.Spec.Suspend,
			ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus}, patcher, r.ControllerName, &result, &retErr)
	}()
	// A suspended policy keeps its status, latestRef included, until it is resumed.
	if !obj.DeletionTimestamp.IsZero() || obj.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	return r.reconcile(ctx, obj)
}

func (r *ImagePolicyReconciler) reconcile(ctx context.Context, obj *imagev1.ImagePolicy) (ctrl.Result, error) {
	sel, err := policy.New(optionsOf(obj))
	if err != nil {
		return ctrl.Result{}, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, err.Error())
	}
	repo, err := r.repository(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	list, err := r.Tags.Get(client.ObjectKeyFromObject(repo))
	if errors.Is(err, tags.ErrNotFound) {
		// The repository's scan stores them and triggers this policy; retried meanwhile, as a
		// rescan of unchanged tags after a restart does not.
		err := fmt.Errorf("ImageRepository %s/%s has not been scanned yet", repo.Namespace, repo.Name)
		conditions.MarkFalse(obj, meta.ReadyCondition, imagev1.DependencyNotReadyReason, "%v", err)
		return ctrl.Result{}, err
	}
	if err != nil {
		return ctrl.Result{}, status.Fail(r.Events, obj, "", imagev1.ScanFailedReason, err)
	}
	tag, err := sel.Select(list.Tags)
	if err != nil {
		var nm *policy.NoMatchError
		if errors.As(err, &nm) {
			return ctrl.Result{}, status.Fail(r.Events, obj, "", imagev1.NoMatchingTagReason, err)
		}
		return ctrl.Result{}, status.Fail(r.Events, obj, "", meta.FailedReason, err)
	}
	// The name as the ImageRepository spells it (nginx stays nginx), from the scan the tags come
	// from.
	ref := imagev1.ImageRef{Name: list.Image, Tag: tag}
	ref.Digest, err = r.digest(ctx, obj, repo, list, ref)
	if err != nil {
		return ctrl.Result{}, status.Fail(r.Events, obj, "", imagev1.DigestFailedReason, err)
	}
	if prev := obj.Status.LatestRef; prev == nil || *prev != ref {
		if prev != nil {
			obj.Status.ObservedPreviousRef = prev.DeepCopy()
			events.Record(r.Events, obj, "", corev1.EventTypeNormal, imagev1.SucceededReason, "latest image is %s (was %s)", ref.String(), prev.String())
		} else {
			events.Record(r.Events, obj, "", corev1.EventTypeNormal, imagev1.SucceededReason, "latest image is %s", ref.String())
		}
		obj.Status.LatestRef = &ref
	}
	conditions.MarkTrue(obj, meta.ReadyCondition, imagev1.SucceededReason, "latest image is %s", ref.String())
	if obj.Spec.DigestReflectionPolicy == imagev1.ReflectAlways && obj.Spec.Interval != nil {
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
	}
	return ctrl.Result{}, nil
}

// optionsOf maps the spec to the policy package's options.
func optionsOf(obj *imagev1.ImagePolicy) policy.Options {
	var o policy.Options
	switch c := obj.Spec.Policy; {
	case c.SemVer != nil:
		o.Kind, o.SemVer = policy.KindSemVer, c.SemVer.Range
	case c.Alphabetical != nil:
		o.Kind, o.Alphabetical = policy.KindAlphabetical, c.Alphabetical.Order
	case c.Numerical != nil:
		o.Kind, o.Numerical = policy.KindNumerical, c.Numerical.Order
	}
	if f := obj.Spec.FilterTags; f != nil {
		o.Pattern, o.Extract = f.Pattern, f.Extract
	}
	return o
}

// repository returns the policy's ImageRepository when it exists, is scanned and grants access.
func (r *ImagePolicyReconciler) repository(ctx context.Context, obj *imagev1.ImagePolicy) (*imagev1.ImageRepository, error) {
	key := repositoryKey(obj)
	repo := &imagev1.ImageRepository{}
	if err := r.Get(ctx, key, repo); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, status.Fail(r.Events, obj, "", imagev1.DependencyNotReadyReason, fmt.Errorf("ImageRepository %s not found", key))
		}
		return nil, status.Fail(r.Events, obj, "", imagev1.DependencyNotReadyReason, fmt.Errorf("reading ImageRepository %s: %w", key, err))
	}
	if key.Namespace != obj.Namespace {
		ok, err := r.admitted(ctx, repo, obj.Namespace)
		if err != nil {
			return nil, status.Fail(r.Events, obj, "", imagev1.AccessDeniedReason, fmt.Errorf("reading namespace %s: %w", obj.Namespace, err))
		}
		if !ok {
			// Retried: namespace labels are not watched.
			return nil, status.Fail(r.Events, obj, "", imagev1.AccessDeniedReason,
				fmt.Errorf("ImageRepository %s does not grant namespace %s access (spec.accessFrom)", key, obj.Namespace))
		}
	}
	return repo, nil
}

// admitted says whether the repository's accessFrom selects the namespace.
func (r *ImagePolicyReconciler) admitted(ctx context.Context, repo *imagev1.ImageRepository, namespace string) (bool, error) {
	if repo.Spec.AccessFrom == nil {
		return false, nil
	}
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return false, err
	}
	for _, s := range repo.Spec.AccessFrom.NamespaceSelectors {
		if labels.SelectorFromSet(s.MatchLabels).Matches(labels.Set(ns.Labels)) {
			return true, nil
		}
	}
	return false, nil
}

// digest looks the tag's manifest digest up as digestReflectionPolicy asks: never, once per tag,
// or at every reconcile.
func (r *ImagePolicyReconciler) digest(ctx context.Context, obj *imagev1.ImagePolicy, repo *imagev1.ImageRepository, list tags.List, ref imagev1.ImageRef) (string, error) {
	switch obj.Spec.DigestReflectionPolicy {
	case imagev1.ReflectIfNotPresent:
		if l := obj.Status.LatestRef; l != nil && l.Name == ref.Name && l.Tag == ref.Tag && l.Digest != "" {
			return l.Digest, nil
		}
	case imagev1.ReflectAlways:
	default:
		return "", nil
	}
	creds, err := credentials(ctx, r.APIReader, repo)
	if err != nil {
		return "", err
	}
	tagRef, err := name.NewTag(list.Canonical+":"+ref.Tag, creds.NameOptions()...)
	if err != nil {
		return "", fmt.Errorf("tag %q: %w", ref.Tag, err)
	}
	if err := cloudLogin(ctx, r.Cloud, r.Client, repo, tagRef.Repository, &creds); err != nil {
		return "", err
	}
	opts, err := registry.Options(tagRef.Repository, creds)
	if err != nil {
		return "", err
	}
	hctx, cancel := context.WithTimeout(ctx, repo.GetTimeout())
	defer cancel()
	desc, err := remote.Head(tagRef, append(opts, remote.WithContext(hctx))...)
	if err != nil {
		_, err = classify(err, "tag "+ref.Name+":"+ref.Tag)
		return "", err
	}
	return desc.Digest.String(), nil
}
