// Package controller holds apply-controller's reconciler.
package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/auth"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/ssa"
	ssautil "github.com/fluxcd/pkg/ssa/utils"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/health"
	"github.com/plumb-dev/plumb/shared/health/cel"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
	"github.com/plumb-dev/plumb/shared/kustomize"
	"github.com/plumb-dev/plumb/shared/objcache"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/redact"
	"github.com/plumb-dev/plumb/shared/refwatch"
	"github.com/plumb-dev/plumb/shared/sops"
	"github.com/plumb-dev/plumb/shared/status"
)

// +kubebuilder:rbac:groups=apply.plumb.dev,resources=kustomizations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apply.plumb.dev,resources=kustomizations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apply.plumb.dev,resources=kustomizations/finalizers,verbs=update
// +kubebuilder:rbac:groups=source.plumb.dev,resources=*,verbs=get;list;watch
// +kubebuilder:rbac:groups=*,resources=*,verbs=*
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// KustomizationReconciler builds a source artifact's path and applies it.
type KustomizationReconciler struct {
	// Client reads typed objects (Kustomizations) from the cache and patches status;
	// dependencies, read as unstructured, come from the API server (sources from the cache).
	client.Client
	// APIReader reads Secrets and ConfigMaps directly, so that they are never cached.
	APIReader client.Reader
	// Config and Mapper are the controller's own; impersonating and remote clients derive
	// from them.
	Config *rest.Config
	Mapper apimeta.RESTMapper
	Events recorder.EventRecorder
	// ControllerName is the field manager of applies and status patches.
	ControllerName string
	// Fetcher downloads artifacts.
	Fetcher *artifact.Fetcher
	// NoCrossNamespaceRefs refuses sourceRef and dependsOn in other namespaces.
	NoCrossNamespaceRefs bool
	// DefaultServiceAccount is impersonated when a Kustomization names none.
	DefaultServiceAccount string
	// NoRemoteBases refuses kustomizations that refer to Git or http(s) URLs.
	NoRemoteBases bool
	// KMSWorkloadIdentity lets SOPS keys of AWS KMS, GCP KMS and Azure Key Vault whose
	// credentials the decryption Secret lacks use the controller's own cloud identity.
	KMSWorkloadIdentity bool
	// KMSHTTPClient carries SOPS's requests to AWS KMS, Azure Key Vault and HashiCorp Vault, and
	// those of the decryption Secret's credentials for their tokens (sops.WithHTTPClient); nil:
	// the SDKs' default transports.
	KMSHTTPClient *http.Client
	// ConcurrentSSA bounds the server-side applies and dry-runs of one run sent at once
	// (--concurrent-ssa, Flux's flag); below 1, one at a time.
	ConcurrentSSA int
	// Clusters obtains the credentials of spec.kubeConfig.configMapRef (nil: no token cache and
	// no serviceAccountName in the ConfigMap).
	Clusters *kubeconfig.Clusters
	// DecryptionIdentity is what spec.decryption.serviceAccountName needs.
	DecryptionIdentity DecryptionIdentity
	// DefaultDecryptionServiceAccount stands for spec.decryption.serviceAccountName when a
	// Kustomization with decryption names none (--default-decryption-service-account).
	DefaultDecryptionServiceAccount string

	trees    lru[*kustomize.Tree]
	builds   lru[*kustomize.Result]
	managers lru[*ssa.ResourceManager]
	watches  *refwatch.Watcher
	// owned is the metadata cache of the objects applied to this cluster (nil: none), records
	// what each Kustomization's last run left them as (kustomization_drift.go).
	owned   *objcache.Cache
	records records
	// handled keeps the reconcile request each Kustomization's last status write recorded
	// (kustomization_requests.go).
	handled handledRequests
	// parked holds the runs waiting for health without a worker (kustomization_park.go), woken
	// through wakeups while wakeCtx (the manager's) lasts; so are the Kustomizations whose
	// objects changed soon after a reconcile request (watchAfterRequest).
	parked  parking
	wakeups chan event.GenericEvent
	wakeCtx context.Context
	// sources reads sources from the manager's cache: refwatch watches their kind before the
	// first read, and an informer stores an object before it hands its event on, so a read is
	// never behind the event that caused it.
	sources client.Reader
}

// runInfo carries what one reconcile learned, for the history entry finalizeStatus writes.
type runInfo struct {
	start    time.Time
	revision string
	digest   string
	secrets  []string // values of Secret variables, never to appear in a message
	// failing is set when the run started with Ready=False: its success is a recovery.
	failing bool
	// announced is set when the run reported what it applied in an event.
	announced bool
	// patcher writes the status at the end of the run, and once before an apply that adds
	// objects to the inventory (recordAdded).
	patcher *status.Patcher
	// parked is set when the run waits for health without its worker: it writes nothing now.
	parked bool
}

// Reconcile follows the house shape: get, defer the one status patch, finalize or set up, skip
// when suspended, validate, then the ordered steps.
func (r *KustomizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &applyv1.Kustomization{}
	if found, err := status.Get(ctx, r.Client, applyv1.KustomizationKind, req.NamespacedName, obj); !found {
		if err == nil {
			r.records.forget(req.NamespacedName) // gone without a finalizer
			r.handled.forget(req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	r.handled.catchUp(req.NamespacedName, obj)
	// A run parked in its health wait goes on below if nothing changed since; any other run
	// drops it.
	parked := r.parked.take(req.NamespacedName)
	st := &runInfo{start: time.Now(), patcher: status.NewPatcher(r.Client, obj), failing: conditions.IsFalse(obj, meta.ReadyCondition)}
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		if !st.parked || retErr != nil {
			r.finalizeStatus(ctx, obj, st.patcher, st, &result, &retErr)
			if st.patcher.Wrote() {
				r.handled.remember(req.NamespacedName, obj)
			}
		}
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, obj)
	}
	controllerutil.AddFinalizer(obj, applyv1.Finalizer)
	if obj.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if err := r.validate(obj); err != nil {
		return ctrl.Result{}, status.Stall(r.Events, obj, applyv1.AccessDeniedReason, err.Error())
	}
	if refused, err := r.refusedKinds(ctx, obj); err != nil || refused != "" {
		if err != nil {
			return ctrl.Result{}, status.Fail(r.Events, obj, "", applyv1.AccessDeniedReason, err)
		}
		return ctrl.Result{}, status.Stall(r.Events, obj, applyv1.AccessDeniedReason, refused)
	}
	return r.reconcile(ctx, obj, st, parked)
}

func (r *KustomizationReconciler) reconcile(ctx context.Context, obj *applyv1.Kustomization, st *runInfo, parked *parkedRun) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		markReconciling(obj, "reconciling generation %d", obj.Generation)
	}
	healthExprs, err := r.healthEvaluator(obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.checkIgnoreRules(obj); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.checkDependencies(ctx, obj); err != nil {
		return ctrl.Result{}, err
	}
	src, err := r.source(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	st.revision = src.Revision
	obj.Status.LastAttemptedRevision = src.Revision

	ctx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	res, secretValues, err := r.build(ctx, obj, src)
	if err != nil {
		return ctrl.Result{}, err
	}
	st.digest = res.Digest
	st.secrets = secretValues
	rm, local, err := r.manager(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	objs := make([]*unstructured.Unstructured, len(res.Objects))
	for i, o := range res.Objects {
		objs[i] = o.DeepCopy() // the build is cached and shared: never mutate it
	}
	rm.SetOwnerLabels(objs, obj.Name, obj.Namespace)
	if parked != nil && parked.resumes(obj, src.Revision, res.Digest) {
		return r.resume(ctx, obj, st, rm, objs, healthExprs, parked)
	}

	unchanged := src.Revision == obj.Status.LastAppliedRevision && res.Digest == lastDigest(obj) &&
		obj.Generation == obj.Status.ObservedGeneration && !conditions.IsFalse(obj, HealthyCondition)
	// Only what may have drifted since the last run is read and dry-run (kustomization_drift.go).
	drifted, statusOnly := objs, []*unstructured.Unstructured(nil)
	switch {
	case unchanged && local:
		if requested(obj) {
			// Watched before the look: an edit the cache does not have yet wakes the
			// Kustomization when the watch delivers it.
			r.watchAfterRequest(obj, objs)
		}
		drifted, statusOnly = r.triage(ctx, obj, objs)
	default:
		r.records.forget(client.ObjectKeyFromObject(obj))
	}
	if unchanged && obj.Spec.DriftPolicy == applyv1.DriftPolicyWarn {
		return r.reportDrift(ctx, obj, rm, objs, drifted, src.Revision, st.secrets)
	}
	if unchanged && len(drifted) == 0 {
		// Nothing to apply: the inventory stands, and only objects whose status changed are
		// judged again.
		return r.recheck(ctx, obj, rm, objs, statusOnly, src.Revision, healthExprs)
	}
	before := obj.Status.Inventory
	if err := r.recordAdded(ctx, obj, drifted, src.Revision, st); err != nil {
		return ctrl.Result{}, err
	}
	applied := newObserved()
	if local {
		// Objects the cache knows to be missing are not read before they are created.
		applied.absent = r.absentFrom(ctx, drifted)
	}
	cs, err := rm.ApplyAllStaged(withObserved(ctx, applied), drifted, kustomize.ApplyOptions(obj))
	made := applied.madeInventory()
	if err != nil && applied.fakedReads() {
		// A read answered from the cache may have hidden an object that is there (one not yet
		// labeled, an immutable field to recreate): once more, reading everything.
		applied = newObserved()
		cs, err = rm.ApplyAllStaged(withObserved(ctx, applied), drifted, kustomize.ApplyOptions(obj))
	}
	if err != nil {
		// The inventory is the last one with what an earlier stage applied (CRDs, Namespaces)
		// and what was created in place of a dry-run, to be pruned later; not the objects
		// recordAdded wrote ahead, which were not applied.
		obj.Status.Inventory = before
		if len(made.Entries) > 0 {
			obj.Status.Inventory = mergeInventories(before, made)
		}
		if cs != nil {
			obj.Status.Inventory = mergeInventories(obj.Status.Inventory, inventoryOf(cs))
		}
		return ctrl.Result{}, status.Fail(r.Events, obj, src.Revision, applyv1.ApplyFailedReason, redact.Error(fmt.Errorf("apply: %w", err), st.secrets))
	}
	if !unchanged || len(drifted) == len(objs) {
		// A partial run (an unchanged build) keeps the inventory: nothing left the build.
		inventory := inventoryOf(cs)
		if obj.Spec.Prune {
			gone, err := r.prune(ctx, obj, rm, inventory)
			if err != nil {
				return ctrl.Result{}, err
			}
			cs.Append(gone.Entries)
		}
		obj.Status.Inventory = inventory
	}
	obj.Status.LastAppliedRevision = src.Revision
	if changes := summary(cs); changes != "" {
		r.event(obj, src.Revision, corev1.EventTypeNormal, applyv1.SucceededReason, "%s", changes)
		st.announced = true
	}
	wait := objs
	if unchanged {
		wait = append(append([]*unstructured.Unstructured(nil), drifted...), statusOnly...)
	}
	run := &parkedRun{revision: src.Revision, digest: res.Digest, objs: objs, applied: applied, checked: newObserved(), keep: unchanged}
	return r.awaitHealth(ctx, obj, st, rm, r.healthSet(obj, wait), local, healthExprs, run, false)
}

// awaitHealth ends a run that applied: it checks the health of set (parking the run when it
// may, see kustomization_park.go), then records the run's objects and marks it Ready.
func (r *KustomizationReconciler) awaitHealth(ctx context.Context, obj *applyv1.Kustomization, st *runInfo, rm *ssa.ResourceManager, set []*unstructured.Unstructured, local bool, exprs *cel.Evaluator, run *parkedRun, resumed bool) (ctrl.Result, error) {
	if !resumed {
		run.total = len(set)
	}
	err := r.checkHealth(withObserved(ctx, run.checked), obj, rm, healthCheck{set: set, total: run.total,
		local: local, revision: run.revision, exprs: exprs, known: run.applied, resumed: resumed,
		canPark: r.canPark(obj, local), deadline: run.deadline})
	var w *healthWait
	if errors.As(err, &w) {
		return ctrl.Result{RequeueAfter: r.park(ctx, obj, st, run, w)}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	r.remember(obj, run.objs, run.applied, run.checked, run.keep)
	markReady(obj, "applied revision %s", run.revision)
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// resume goes on with a parked run: the status and facts it left, the objects it still waits
// for, its deadline.
func (r *KustomizationReconciler) resume(ctx context.Context, obj *applyv1.Kustomization, st *runInfo, rm *ssa.ResourceManager, objs []*unstructured.Unstructured, exprs *cel.Evaluator, p *parkedRun) (ctrl.Result, error) {
	obj.Status = *p.status.DeepCopy()
	*st = p.info
	p.objs = objs
	return r.awaitHealth(ctx, obj, st, rm, p.pending, true, exprs, p, true)
}

// recheck ends a run that applied nothing: the objects whose status alone changed since the
// last run are judged again (when spec.wait), and their records move on.
func (r *KustomizationReconciler) recheck(ctx context.Context, obj *applyv1.Kustomization, rm *ssa.ResourceManager, objs, statusOnly []*unstructured.Unstructured, revision string, exprs *cel.Evaluator) (ctrl.Result, error) {
	checked := newObserved()
	if len(statusOnly) > 0 && obj.Spec.Wait {
		set := r.healthSet(obj, statusOnly)
		if err := r.checkHealth(withObserved(ctx, checked), obj, rm, healthCheck{set: set, total: len(set), local: true, revision: revision, exprs: exprs}); err != nil {
			return ctrl.Result{}, err
		}
	}
	key := client.ObjectKeyFromObject(obj)
	for _, o := range statusOnly {
		if checked.get(o) == nil {
			// Not judged (no spec.wait): the record moves to what the cache shows.
			if now, found, _ := r.owned.Get(ctx, keyOf(o)); found {
				r.records.advance(key, keyOf(o), now)
			}
		}
	}
	r.remember(obj, objs, newObserved(), checked, true)
	markReady(obj, "applied revision %s", revision)
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// sourceArtifact is what a consumer needs of a source, read through the artifact contract.
type sourceArtifact struct {
	meta.Artifact
	ref string // Kind/namespace/name, for messages
}

// source reads the sourceRef as unstructured and returns its artifact when the source is Ready.
func (r *KustomizationReconciler) source(ctx context.Context, obj *applyv1.Kustomization) (*sourceArtifact, error) {
	gvk, key, err := sourceKey(obj)
	if err != nil {
		return nil, status.Stall(r.Events, obj, applyv1.InvalidSpecReason, err.Error())
	}
	name := fmt.Sprintf("%s %s", gvk.Kind, key)
	u, err := r.watches.Get(ctx, r.sources, gvk, key)
	if err != nil {
		return nil, status.Fail(r.Events, obj, "", applyv1.SourceNotReadyReason, fmt.Errorf("source %s: %w", name, err))
	}
	// Missing, unreadable, without artifact or not Ready: one message, so that it does not
	// tell whether the object exists.
	notReady := refwatch.NotReadyOrNotFound("source " + name)
	if u == nil {
		return nil, status.Wait(r.Events, obj, "", applyv1.SourceNotReadyReason, "%s", notReady)
	}
	a, err := artifact.FromStatus(u)
	if err != nil {
		return nil, status.Fail(r.Events, obj, "", applyv1.SourceNotReadyReason, fmt.Errorf("source %s: %w", name, err))
	}
	if a.URL == "" || !refwatch.ReadyAtGeneration(u) {
		return nil, status.Wait(r.Events, obj, a.Revision, applyv1.SourceNotReadyReason, "%s", notReady)
	}
	return &sourceArtifact{Artifact: a, ref: name}, nil
}

// peekSource returns the revision the source's artifact has now, without
// touching obj's status.
func (r *KustomizationReconciler) peekSource(ctx context.Context, obj *applyv1.Kustomization) (string, error) {
	gvk, key, err := sourceKey(obj)
	if err != nil {
		return "", err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := r.sources.Get(ctx, key, u); err != nil {
		return "", err
	}
	rev, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "revision")
	return rev, nil
}

// sourceKey resolves spec.sourceRef's defaults. The kind and key are set even when the
// apiVersion does not parse.
func sourceKey(obj *applyv1.Kustomization) (schema.GroupVersionKind, types.NamespacedName, error) {
	ref := obj.Spec.SourceRef
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
		return schema.GroupVersionKind{Kind: ref.Kind}, key, fmt.Errorf("spec.sourceRef.apiVersion %q: %w", apiVersion, err)
	}
	return gv.WithKind(ref.Kind), key, nil
}

// defaultSourceAPIVersion is assumed for a sourceRef without apiVersion.
const defaultSourceAPIVersion = "source.plumb.dev/v1beta1"

// checkDependencies waits until every object of spec.dependsOn is Ready at its generation.
func (r *KustomizationReconciler) checkDependencies(ctx context.Context, obj *applyv1.Kustomization) error {
	deps, err := dependencies(obj)
	if err != nil {
		return status.Stall(r.Events, obj, applyv1.InvalidSpecReason, err.Error())
	}
	if cycle := r.dependencyCycle(ctx, obj); cycle != "" {
		return status.Stall(r.Events, obj, applyv1.DependencyCycleReason, "spec.dependsOn leads back to this Kustomization: "+cycle)
	}
	if err := r.readyExprs(obj, deps); err != nil {
		return err
	}
	msg, err := r.watches.NotReady(ctx, r.Client, deps)
	if err != nil {
		return status.Fail(r.Events, obj, "", applyv1.DependencyNotReadyReason, err)
	}
	if msg != "" {
		return status.Wait(r.Events, obj, "", applyv1.DependencyNotReadyReason, "%s", msg)
	}
	return nil
}

// kustomizationGVK is what a dependsOn entry names by default.
var kustomizationGVK = applyv1.GroupVersion.WithKind(applyv1.KustomizationKind)

// dependencies resolves spec.dependsOn.
func dependencies(obj *applyv1.Kustomization) ([]refwatch.Dependency, error) {
	deps := make([]refwatch.Dependency, 0, len(obj.Spec.DependsOn))
	for _, d := range obj.Spec.DependsOn {
		dep, err := refwatch.ResolveDependency(kustomizationGVK, obj.Namespace, d.APIVersion, d.Kind, d.Namespace, d.Name)
		if err != nil {
			return nil, err
		}
		deps = append(deps, dep)
	}
	return deps, nil
}

// dependencyCycle follows dependsOn through Kustomizations (from the cache) and returns the path
// back to obj, or "" when there is none.
func (r *KustomizationReconciler) dependencyCycle(ctx context.Context, obj *applyv1.Kustomization) string {
	return plumbreconcile.DependencyCycle(ctx, r, obj, func() *applyv1.Kustomization { return &applyv1.Kustomization{} },
		func(k *applyv1.Kustomization) []types.NamespacedName {
			deps, _ := dependencies(k) // a bad entry stalls that Kustomization; it leads nowhere
			return refwatch.SameKind(kustomizationGVK, deps)
		})
}

// build downloads and unpacks the artifact into memory (once per digest) and builds the path
// (once per artifact, path and build settings, unless the build reaches remote bases).
func (r *KustomizationReconciler) build(ctx context.Context, obj *applyv1.Kustomization, src *sourceArtifact) (*kustomize.Result, []string, error) {
	opts, secrets, err := r.buildOptions(ctx, obj)
	if err != nil {
		return nil, nil, err
	}
	key := buildKey(src.Digest, opts)
	if res, ok := r.builds.get(key); ok {
		return res, append(secrets, res.Secrets...), nil
	}
	tree, ok := r.trees.get(src.Digest)
	if !ok {
		data, err := r.Fetcher.Fetch(ctx, &src.Artifact)
		if err != nil {
			return nil, nil, status.Fail(r.Events, obj, src.Revision, applyv1.ArtifactFailedReason, fmt.Errorf("artifact of %s: %w", src.ref, err))
		}
		if tree, err = kustomize.Load(bytes.NewReader(data), artifact.DefaultLimits); err != nil {
			return nil, nil, status.Fail(r.Events, obj, src.Revision, applyv1.ArtifactFailedReason, fmt.Errorf("artifact of %s: %w", src.ref, err))
		}
		r.trees.put(src.Digest, tree)
	}
	res, err := tree.Build(opts)
	if err != nil {
		return nil, nil, status.Fail(r.Events, obj, src.Revision, buildFailure(err), redact.Error(err, secrets))
	}
	if !res.Remote { // what a remote base holds may change without a new artifact
		r.builds.put(key, res)
	}
	// Decrypted values are masked like the values of Secret variables.
	return res, append(secrets, res.Secrets...), nil
}

// buildOptions are the build settings of the Kustomization, with the variables of its
// postBuild read now; it returns the values read from Secrets, to mask.
func (r *KustomizationReconciler) buildOptions(ctx context.Context, obj *applyv1.Kustomization) (kustomize.Options, []string, error) {
	decrypt := []sops.Option{sops.WithWorkloadIdentity(r.KMSWorkloadIdentity)}
	if r.KMSHTTPClient != nil {
		decrypt = append(decrypt, sops.WithHTTPClient(r.KMSHTTPClient))
	}
	identity := ""
	if name := r.decryptionServiceAccount(obj); name != "" {
		if !r.DecryptionIdentity.Enabled {
			return kustomize.Options{}, nil, status.Stall(r.Events, obj, applyv1.FeatureGateDisabledReason, fmt.Sprintf(
				"spec.decryption.serviceAccountName %s names the cloud identity of the KMS keys, which needs the controller flag --feature-gates=%s=true",
				name, auth.FeatureGateObjectLevelWorkloadIdentity))
		}
		// Read now, for the build's cache key: a build decrypted with one ServiceAccount's
		// identity is never reused for another's, nor once this one changed or went.
		sa := &corev1.ServiceAccount{}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: name}, sa); err != nil {
			return kustomize.Options{}, nil, status.Fail(r.Events, obj, "", applyv1.DecryptionFailedReason,
				fmt.Errorf("spec.decryption.serviceAccountName: ServiceAccount %s/%s is not ready or not found", obj.Namespace, name))
		}
		identity = fmt.Sprintf("decryption-serviceaccount@%s/%s", sa.UID, sa.ResourceVersion)
		decrypt = append(decrypt, sops.WithCloudIdentity(r.DecryptionIdentity.serviceAccount(r.Client, obj, name)))
	}
	opts, err := kustomize.OptionsFor(ctx, r.APIReader, obj, !r.NoRemoteBases, decrypt...)
	if err != nil {
		return opts, nil, status.Fail(r.Events, obj, "", buildFailure(err), err)
	}
	if identity != "" {
		opts.SecretVersions = append(opts.SecretVersions, identity)
	}
	return opts, opts.Secrets, nil
}

// decryptionServiceAccount is the ServiceAccount whose cloud identity opens obj's KMS keys:
// spec.decryption.serviceAccountName, or else --default-decryption-service-account; "" for none.
func (r *KustomizationReconciler) decryptionServiceAccount(obj *applyv1.Kustomization) string {
	d := obj.Spec.Decryption
	switch {
	case d == nil:
		return ""
	case d.ServiceAccountName != "":
		return d.ServiceAccountName
	}
	return r.DefaultDecryptionServiceAccount
}

// buildFailure is the reason of a failed build: DecryptionFailed when a file or the keys of
// spec.decryption are at fault.
func buildFailure(err error) string {
	if errors.Is(err, kustomize.ErrDecryption) {
		return applyv1.DecryptionFailedReason
	}
	return applyv1.BuildFailedReason
}

// buildKey identifies a build: the artifact and every option that shapes the output.
func buildKey(digest string, opts kustomize.Options) string {
	b, _ := json.Marshal(opts)
	h := sha256.New()
	h.Write([]byte(digest))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// prune deletes what left the build, except objects marked to keep.
func (r *KustomizationReconciler) prune(ctx context.Context, obj *applyv1.Kustomization, rm *ssa.ResourceManager, applied *applyv1.Inventory) (*ssa.ChangeSet, error) {
	old, err := stale(obj.Status.Inventory, applied)
	if err != nil || len(old) == 0 {
		return ssa.NewChangeSet(), err
	}
	cs, err := rm.DeleteAll(ctx, old, ssa.DeleteOptions{
		PropagationPolicy: metav1.DeletePropagationBackground,
		Inclusions:        rm.GetOwnerLabels(obj.Name, obj.Namespace),
		Exclusions:        applyv1.PruneDisabledSelector(),
	})
	if err != nil {
		// Keep what could not be deleted in the inventory, to try again.
		obj.Status.Inventory = mergeInventories(applied, obj.Status.Inventory)
		return nil, status.Fail(r.Events, obj, obj.Status.LastAttemptedRevision, applyv1.PruneFailedReason, fmt.Errorf("prune: %w", err))
	}
	return cs, nil
}

// mergeInventories returns the union of two inventories, sorted by ID.
func mergeInventories(a, b *applyv1.Inventory) *applyv1.Inventory {
	seen := map[string]bool{}
	out := &applyv1.Inventory{}
	for _, inv := range []*applyv1.Inventory{a, b} {
		if inv == nil {
			continue
		}
		for _, e := range inv.Entries {
			if !seen[e.ID] {
				seen[e.ID] = true
				out.Entries = append(out.Entries, e)
			}
		}
	}
	sort.Slice(out.Entries, func(i, j int) bool { return out.Entries[i].ID < out.Entries[j].ID })
	return out
}

// healthSet is what a health check judges: the applied objects (spec.wait), but those marked
// ssa: Ignore, and the objects of spec.healthChecks.
func (r *KustomizationReconciler) healthSet(obj *applyv1.Kustomization, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var set []*unstructured.Unstructured
	if obj.Spec.Wait {
		for _, o := range objs {
			if !ssautil.AnyInMetadata(o, applyv1.SSASelector("Ignore")) {
				set = append(set, o)
			}
		}
	}
	for _, hc := range obj.Spec.HealthChecks {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(hc.APIVersion)
		u.SetKind(hc.Kind)
		u.SetNamespace(hc.Namespace)
		u.SetName(hc.Name)
		set = append(set, u)
	}
	return set
}

// healthCheck is what checkHealth judges, and how.
type healthCheck struct {
	set      []*unstructured.Unstructured // healthSet, or what a parked run still waits for
	total    int                          // the objects of the whole check, for its message
	local    bool                         // the objects are of this cluster
	revision string
	exprs    *cel.Evaluator
	known    *observed // what this run's apply wrote, or nil
	resumed  bool      // a parked run goes on: known is no first look
	canPark  bool      // look once and answer a *healthWait rather than wait
	deadline time.Time // a parked run's; else ctx's
}

// checkHealth waits, within the timeout, for the objects of hc.set to be Current in kstatus
// terms, or by spec.healthCheckExprs for the kinds they name. The first look at an object is
// what this run's apply returned (known), unless the run resumed; then an object of the local
// cluster is read again when the metadata cache sees it change, with a slow poll as a safety
// net. Listed objects may not be ours (not in the cache): with any, the wait polls as it always
// did. When the run may park, checkHealth looks once and returns a *healthWait instead of
// waiting (kustomization_park.go); a parked run past its deadline has timed out.
func (r *KustomizationReconciler) checkHealth(ctx context.Context, obj *applyv1.Kustomization, rm *ssa.ResourceManager, hc healthCheck) error {
	set, local, revision, exprs, known, deadline := hc.set, hc.local, hc.revision, hc.exprs, hc.known, hc.deadline
	if len(set) == 0 {
		markHealthy(obj, metav1.ConditionUnknown, applyv1.SucceededReason, "no health checks")
		return nil
	}
	superseded := func() string {
		src, err := r.peekSource(ctx, obj)
		if err == nil && src != "" && src != revision {
			return "the source has a new revision, " + src
		}
		return ""
	}
	opts := health.Options{Superseded: superseded, Status: exprs.Status}
	if known != nil && !hc.resumed {
		opts.Known = known.get
	}
	if local && r.owned != nil && len(obj.Spec.HealthChecks) == 0 {
		opts.Cached = func(o *unstructured.Unstructured) *unstructured.Unstructured {
			return r.cachedForHealth(ctx, o, known, exprs)
		}
		opts.Changed = func(ctx context.Context, objs []*unstructured.Unstructured) (<-chan struct{}, func()) {
			keys := make([]objcache.Key, len(objs))
			for i, o := range objs {
				keys[i] = keyOf(o)
			}
			return r.owned.Changed(ctx, keys)
		}
	}
	var err error
	if hc.canPark {
		// The watch may already have seen what came after the apply's answer (the Deployment's
		// controller is quick): the first look takes the watch's copy when it vouches for the
		// applied generation, else the answer. A run parked on a stale look would wait for a
		// change that has already happened.
		if cached, applied := opts.Cached, opts.Known; cached != nil && applied != nil {
			opts.Known = func(o *unstructured.Unstructured) *unstructured.Unstructured {
				if u := cached(o); u != nil {
					return u
				}
				return applied(o)
			}
		}
		// Watched before the look: a change between the look and the park still wakes the run.
		wake, stop := (<-chan struct{})(nil), func() {}
		if opts.Changed != nil {
			wake, stop = opts.Changed(r.wakeCtx, set)
		}
		var pending []*unstructured.Unstructured
		var why []string
		pending, why, err = health.Check(ctx, rm.Client(), set, opts)
		if err == nil && len(pending) > 0 {
			if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
				deadline = d
			}
			if time.Now().Before(deadline) {
				return &healthWait{pending: pending, why: why, wake: wake, stop: stop}
			}
			err = health.TimedOut(why)
		}
		stop()
	} else {
		err = health.WaitWith(ctx, rm.Client(), set, opts)
	}
	if err != nil {
		var s *health.SupersededError
		if errors.As(err, &s) {
			markHealthy(obj, metav1.ConditionUnknown, applyv1.HealthCheckCanceledReason, "%v", err)
			return status.Wait(r.Events, obj, revision, applyv1.HealthCheckCanceledReason, "%v", err)
		}
		markHealthy(obj, metav1.ConditionFalse, applyv1.HealthCheckFailedReason, "%v", err)
		return status.Fail(r.Events, obj, revision, applyv1.HealthCheckFailedReason, fmt.Errorf("health check: %w", err))
	}
	markHealthy(obj, metav1.ConditionTrue, applyv1.SucceededReason, "%d objects healthy", hc.total)
	return nil
}

// cachedForHealth returns the object as the watch shows it, for a health judgment without a
// read, when the watch vouches for it: the cache keeps the status of its kind, no health
// expression needs the rest of it, and the watch has seen at least the generation this run
// applied (an older one would judge the spec before the apply).
func (r *KustomizationReconciler) cachedForHealth(ctx context.Context, o *unstructured.Unstructured, known *observed, exprs *cel.Evaluator) *unstructured.Unstructured {
	gk := o.GroupVersionKind().GroupKind()
	if exprs.Judges(gk) {
		return nil
	}
	u, ok := r.owned.Object(ctx, keyOf(o))
	if !ok {
		return nil
	}
	if known != nil {
		if applied := known.get(o); applied != nil && u.GetGeneration() < applied.GetGeneration() {
			return nil
		}
	}
	if seen, ok := ctx.Value(observedKey{}).(*observed); ok {
		// Recorded as if read: the next run compares with what was judged.
		seen.note(u)
	}
	return u
}

// reportDrift is the Warn drift policy on an unchanged revision: a server-side dry-run of every
// object that may have drifted (candidates), and a Warning naming those that differ; nothing is
// written to them. Those found unchanged are recorded, those that differ are looked at again
// next time.
func (r *KustomizationReconciler) reportDrift(ctx context.Context, obj *applyv1.Kustomization, rm *ssa.ResourceManager, objs, candidates []*unstructured.Unstructured, revision string, secrets []string) (ctrl.Result, error) {
	var drifted []string
	diff := kustomize.DiffOptions(obj)
	seen := newObserved()
	for _, o := range candidates {
		entry, _, _, err := rm.Diff(withObserved(ctx, seen), o, diff)
		if err != nil {
			return ctrl.Result{}, status.Fail(r.Events, obj, revision, applyv1.ApplyFailedReason, redact.Error(fmt.Errorf("drift check: %w", err), secrets))
		}
		if entry != nil && entry.Action != ssa.UnchangedAction && entry.Action != ssa.SkippedAction {
			drifted = append(drifted, entry.Subject)
			seen.drop(o)
		}
	}
	r.remember(obj, objs, seen, newObserved(), true)
	if len(drifted) > 0 {
		r.event(obj, revision, corev1.EventTypeWarning, applyv1.DriftDetectedReason, "drift left in place (driftPolicy Warn): %s", strings.Join(drifted, ", "))
		markReady(obj, "applied revision %s; drifted (left in place): %s", revision, strings.Join(drifted, ", "))
	} else {
		markReady(obj, "applied revision %s", revision)
	}
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// summary describes the changes of a change set ("Deployment/shop/api configured, ..."), or ""
// when nothing changed.
func summary(cs *ssa.ChangeSet) string {
	var parts []string
	for _, e := range cs.Entries {
		switch e.Action {
		case ssa.CreatedAction, ssa.ConfiguredAction, ssa.DeletedAction:
			parts = append(parts, e.String())
		}
	}
	return strings.Join(parts, ", ")
}

// lastDigest returns the build digest of the newest run if it succeeded, else "".
func lastDigest(obj *applyv1.Kustomization) string {
	if h := obj.Status.History; len(h) > 0 && h[0].Result == applyv1.SucceededReason {
		return h[0].Digest
	}
	return ""
}

// refusedKinds describes the first reference of spec.sourceRef and spec.dependsOn to a kind that
// did not opt in (shared/refwatch.Allowed), or returns "" when there is none. It runs before any
// reference is read or watched.
func (r *KustomizationReconciler) refusedKinds(ctx context.Context, obj *applyv1.Kustomization) (string, error) {
	check := func(field string, gvk schema.GroupVersionKind) (string, error) {
		err := r.watches.Allowed(ctx, gvk)
		if errors.Is(err, refwatch.ErrKindRefused) {
			return fmt.Sprintf("%s: %v", field, err), nil
		}
		return "", err
	}
	if gvk, _, err := sourceKey(obj); err == nil {
		if msg, err := check("spec.sourceRef", gvk); msg != "" || err != nil {
			return msg, err
		}
	}
	deps, _ := dependencies(obj) // one that does not resolve stalls in checkDependencies
	for _, d := range deps {
		if msg, err := check("spec.dependsOn "+d.String(), d.GVK); msg != "" || err != nil {
			return msg, err
		}
	}
	return "", nil
}

// validate checks the multi-tenancy flags.
func (r *KustomizationReconciler) validate(obj *applyv1.Kustomization) error {
	if !r.NoCrossNamespaceRefs {
		return nil
	}
	if ns := obj.Spec.SourceRef.Namespace; ns != "" && ns != obj.Namespace {
		return fmt.Errorf("spec.sourceRef in namespace %s: cross-namespace references are disabled (--no-cross-namespace-refs)", ns)
	}
	for _, d := range obj.Spec.DependsOn {
		if d.Namespace != "" && d.Namespace != obj.Namespace {
			return fmt.Errorf("spec.dependsOn %s in namespace %s: cross-namespace references are disabled (--no-cross-namespace-refs)", d.Name, d.Namespace)
		}
	}
	return nil
}
