// Package controller holds source-controller's reconcilers.
package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/go-git/go-git/v5/plumbing"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/gitauth"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/proxy"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/redact"
	"github.com/plumb-dev/plumb/shared/status"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/git"
	"github.com/plumb-dev/plumb/source-controller/internal/storage"
)

// +kubebuilder:rbac:groups=source.plumb.dev,resources=gitrepositories,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=gitrepositories/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=source.plumb.dev,resources=gitrepositories/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// GitRepositoryReconciler publishes a revision of a Git repository as an artifact.
type GitRepositoryReconciler struct {
	client.Client
	// Events records Kubernetes Events on the objects.
	Events recorder.EventRecorder
	// Storage keeps and serves the artifacts.
	Storage *storage.Storage
	// ControllerName is the field owner of status patches.
	ControllerName string
	statusHelper

	// builds shares one fetch and one tarball between GitRepositories that want the same
	// content (same URL, commit and settings): the first builds it, the others hard link it.
	builds buildCache
	// refs shares the listing of a remote's refs between GitRepositories with the same URL and
	// credentials that ask at about the same time.
	refs git.Lister
	// verificationRequired refuses GitRepositories without spec.verify (--require-verification).
	verificationRequired bool
}

// Reconcile follows the house shape: get, defer the one status patch, finalize or set up, skip
// when suspended, validate, then the ordered steps.
func (r *GitRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &sourcev1.GitRepository{}
	if found, err := status.Get(ctx, r.Client, sourcev1.GitRepositoryKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		r.finalizeStatus(ctx, obj, gitStatus(obj), patcher, &result, &retErr)
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(obj)
	}
	// The finalizer goes out with this reconcile's one patch rather than in a round of its own.
	controllerutil.AddFinalizer(obj, sourcev1.SourceFinalizer)
	if obj.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if r.verificationRequired && obj.Spec.Verification == nil {
		return ctrl.Result{}, r.refuseUnverified(obj, verificationRequiredMessage(sourcev1.GitRepositoryKind, gitVerifyHowTo))
	}
	if err := validate(obj); err != nil {
		return ctrl.Result{}, r.stall(obj, sourcev1.InvalidSpecReason, err.Error())
	}
	return r.reconcile(ctx, obj)
}

func (r *GitRepositoryReconciler) reconcile(ctx context.Context, obj *sourcev1.GitRepository) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		markReconciling(obj, "reconciling generation %d", obj.Generation)
	}
	remote, remoteKey, err := r.remote(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	included, err := r.included(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	verify, err := r.verifySettings(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	opCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	ref := obj.GetRef()
	var res git.Resolved
	var a *meta.Artifact
	// A ref that moves between listing and fetching is resolved once more.
	for attempt := 0; ; attempt++ {
		if res, err = r.resolve(opCtx, obj, remote, remoteKey, git.Ref(ref)); err != nil {
			return ctrl.Result{}, err
		}
		if r.upToDate(obj, res.Revision, included, verify) {
			// Follow a changed --storage-adv-addr without rebuilding.
			obj.Status.Artifact.URL = r.Storage.URL(obj.Status.Artifact)
			markGitVerified(obj, verify)
			markReady(obj, res.Revision)
			return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
		}
		markReconciling(obj, "building artifact for revision %s", res.Revision)
		a, err = r.build(opCtx, obj, remote, res, ref.Commit != "", included, verify)
		if err == nil {
			break
		}
		if errors.Is(err, hostlimit.ErrBusy) {
			return ctrl.Result{}, r.hostBusy(obj, err)
		}
		if !errors.Is(err, git.ErrRefMoved) || attempt > 0 {
			return ctrl.Result{}, r.failure(obj, res.Revision, err)
		}
	}
	obj.Status.Artifact = a
	obj.Status.IncludedArtifacts = included
	obj.Status.ObservedIgnore = obj.Spec.Ignore
	obj.Status.ObservedRecurseSubmodules = obj.Spec.RecurseSubmodules
	obj.Status.ObservedSparseCheckout = obj.Spec.SparseCheckout
	obj.Status.ObservedInclude = obj.Spec.Include
	markGitVerified(obj, verify)
	markReady(obj, res.Revision)
	r.event(obj, res.Revision, corev1.EventTypeNormal, sourcev1.SucceededReason, "stored artifact for revision %s", res.Revision)
	if err := r.Storage.GC(objectOf(obj), a); err != nil {
		log.FromContext(ctx).Error(err, "garbage collecting old artifacts")
	}
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.GetRequeueAfter())}, nil
}

// remote reads the credentials Secret, if any, and builds the remote.
// resolve lists the remote's refs, through the listing other GitRepositories of the same remote
// and credentials share, holding one of the host's slots, and picks the ref's commit.
func (r *GitRepositoryReconciler) resolve(ctx context.Context, obj *sourcev1.GitRepository, remote git.Remote, key string, ref git.Ref) (git.Resolved, error) {
	refs, err := r.refs.List(ctx, key, obj.GetTimeout(), r.hosts.BusyWait(), func(lctx context.Context) ([]*plumbing.Reference, error) {
		release, err := r.hosts.Acquire(lctx, hostlimit.Key(remote.URL))
		if err != nil {
			return nil, err
		}
		defer release()
		return git.ListRefs(lctx, remote)
	})
	switch {
	case errors.Is(err, git.ErrListingSlow):
		host := hostlimit.Key(remote.URL)
		return git.Resolved{}, r.hostBusy(obj, &hostlimit.BusyError{Host: host, InFlight: r.hosts.InFlight(host)})
	case errors.Is(err, hostlimit.ErrBusy):
		return git.Resolved{}, r.hostBusy(obj, err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return git.Resolved{}, r.failure(obj, "", fmt.Errorf("listing refs of %s: timed out (spec.timeout)", redact.URL(remote.URL)))
	case err != nil:
		return git.Resolved{}, r.failure(obj, "", err)
	}
	res, err := git.Pick(remote, refs, ref)
	if err != nil {
		return res, r.failure(obj, "", err)
	}
	return res, nil
}

// remote reads the credentials and returns the remote with the key of its URL and credentials,
// under which listings are shared.
func (r *GitRepositoryReconciler) remote(ctx context.Context, obj *sourcev1.GitRepository) (git.Remote, string, error) {
	if obj.Spec.ProxySecretRef != nil {
		if u, err := url.Parse(obj.Spec.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return git.Remote{}, "", r.failure(obj, "", fmt.Errorf("%w: proxySecretRef applies to http(s) URLs only, not %s", git.ErrInvalid, redact.URL(obj.Spec.URL)))
		}
	}
	src := gitauth.Source{Provider: obj.Spec.Provider, Client: r.Client, Namespace: obj.Namespace, ServiceAccountName: obj.Spec.ServiceAccountName}
	if ref := obj.Spec.SecretRef; ref != nil {
		secret := &corev1.Secret{}
		key := types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}
		if err := r.Get(ctx, key, secret); err != nil {
			if apierrors.IsNotFound(err) {
				err = fmt.Errorf("%w: credentials Secret %s not found", git.ErrAuth, key)
			} else {
				err = fmt.Errorf("%w: credentials Secret %s: %v", git.ErrAuth, key, err)
			}
			return git.Remote{}, "", r.failure(obj, "", err)
		}
		src.Secret = secret.Data
	}
	if ref := obj.Spec.ProxySecretRef; ref != nil {
		var err error
		if src.Proxy, err = proxy.FromSecret(ctx, r.Client, obj.Namespace, ref.Name); err != nil {
			return git.Remote{}, "", r.failure(obj, "", err)
		}
	}
	// A provider's token comes from the process's cache: asked for once per app (or identity)
	// and lifetime, however many objects and reconciles use it.
	remote, err := git.ProviderRemote(ctx, obj.Spec.URL, src)
	if err != nil {
		return remote, "", r.failure(obj, "", err)
	}
	return remote, remoteKey(obj.Spec.URL, src), nil
}

// remoteKey identifies a URL with its credentials and proxy, without keeping them: a digest of
// all three, so that a listing is shared only between objects that reach the remote alike.
func remoteKey(url string, src gitauth.Source) string {
	h := sha256.New()
	h.Write([]byte(url))
	fmt.Fprintf(h, "\x00proxy\x00%s", src.Proxy.Key())
	if src.Provider == gitauth.ProviderAzure {
		// The identity is the controller's, or a ServiceAccount of the namespace.
		fmt.Fprintf(h, "\x00azure\x00%s/%s", src.Namespace, src.ServiceAccountName)
	}
	fmt.Fprintf(h, "\x00provider\x00%s", src.Provider)
	secret := src.Secret
	keys := make([]string, 0, len(secret))
	for k := range secret {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s\x00%d\x00", k, len(secret[k]))
		h.Write(secret[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// failure sets the Ready condition for an error of a step, records a Warning event, and returns
// the error to retry with (or the terminal error of a stall). revision is the one being built,
// if known.
func (r *GitRepositoryReconciler) failure(obj *sourcev1.GitRepository, revision string, err error) error {
	var reason string
	switch {
	case verifyReason(err) != "":
		reason = verifyReason(err)
		markVerifyFailed(obj, reason, err)
	case errors.Is(err, git.ErrInvalid):
		return r.stall(obj, sourcev1.InvalidSpecReason, err.Error())
	case errors.Is(err, proxy.ErrProxy):
		reason = sourcev1.ProxyFailedReason
	case errors.Is(err, git.ErrAuth):
		reason = sourcev1.AuthenticationFailedReason
	case errors.Is(err, git.ErrRefNotFound):
		reason = sourcev1.RefNotFoundReason
	case errors.Is(err, git.ErrContent):
		reason = sourcev1.BuildFailedReason
	case errors.Is(err, errInclude), errors.Is(err, artifact.ErrUnsafe):
		reason = sourcev1.IncludeFailedReason
	case errors.Is(err, storage.ErrIO):
		reason = sourcev1.ArtifactFailedReason
	default:
		reason = sourcev1.GitOperationFailedReason
	}
	return status.Fail(r.events, obj, revision, reason, err)
}

// errInclude marks the failures of included GitRepositories.
var errInclude = errors.New("include")

// included returns the artifacts of the included GitRepositories, in spec order.
func (r *GitRepositoryReconciler) included(ctx context.Context, obj *sourcev1.GitRepository) ([]meta.Artifact, error) {
	if len(obj.Spec.Include) == 0 {
		return nil, nil
	}
	if cycle := r.includeCycle(ctx, obj); cycle != "" {
		return nil, r.stall(obj, sourcev1.InvalidSpecReason, "spec.include leads back to this GitRepository: "+cycle)
	}
	out := make([]meta.Artifact, 0, len(obj.Spec.Include))
	for _, inc := range obj.Spec.Include {
		dep := &sourcev1.GitRepository{}
		key := types.NamespacedName{Namespace: obj.Namespace, Name: inc.Repository.Name}
		if err := r.Get(ctx, key, dep); err != nil {
			return nil, r.failure(obj, "", fmt.Errorf("%w: GitRepository %s: %v", errInclude, key.Name, err))
		}
		if !r.Storage.Has(dep.Status.Artifact) {
			return nil, r.failure(obj, "", fmt.Errorf("%w: GitRepository %s has no artifact yet", errInclude, key.Name))
		}
		out = append(out, *dep.Status.Artifact)
	}
	return out, nil
}

// includeCycle follows spec.include through GitRepositories of the namespace (from the cache)
// and returns the path back to obj, or "" when there is none: an include cycle would nest the
// content in itself with every rebuild.
func (r *GitRepositoryReconciler) includeCycle(ctx context.Context, obj *sourcev1.GitRepository) string {
	cycle := plumbreconcile.Cycle(obj.Name, func(name string) []string {
		g := obj
		if name != obj.Name {
			g = &sourcev1.GitRepository{}
			if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: name}, g); err != nil {
				return nil
			}
		}
		out := make([]string, 0, len(g.Spec.Include))
		for _, inc := range g.Spec.Include {
			out = append(out, inc.Repository.Name)
		}
		return out
	})
	return strings.Join(cycle, " -> ")
}

// upToDate is the no-op fast path: the stored artifact has the revision, was built with the
// current settings and includes, was verified with the current spec.verify and keys (so it is
// not verified again), and is still on disk.
func (r *GitRepositoryReconciler) upToDate(obj *sourcev1.GitRepository, revision string, included []meta.Artifact, verify *gitVerify) bool {
	s := obj.Status
	if s.Artifact == nil || s.Artifact.Revision != revision || !r.Storage.Has(s.Artifact) {
		return false
	}
	if s.ObservedVerification != verify.cacheKey() {
		return false
	}
	if !equalPtr(s.ObservedIgnore, obj.Spec.Ignore) || s.ObservedRecurseSubmodules != obj.Spec.RecurseSubmodules ||
		!slices.Equal(s.ObservedSparseCheckout, obj.Spec.SparseCheckout) ||
		!slices.Equal(s.ObservedInclude, obj.Spec.Include) || len(s.IncludedArtifacts) != len(included) {
		return false
	}
	for i := range included {
		if s.IncludedArtifacts[i].Digest != included[i].Digest {
			return false
		}
	}
	return true
}

// build writes the artifact, or adopts an identical one another GitRepository already built.
// Objects that want the same content share one build; it runs detached from any one caller's
// cancellation, bounded by the timeout of the object that started it, and each caller waits with
// its own deadline.
func (r *GitRepositoryReconciler) build(ctx context.Context, obj *sourcev1.GitRepository, remote git.Remote, res git.Resolved, pinned bool, included []meta.Artifact, verify *gitVerify) (*meta.Artifact, error) {
	o := objectOf(obj)
	v, err := verify.verification()
	if err != nil {
		return nil, err
	}
	key := buildKey(obj, res, included, verify.cacheKey())
	spec := obj.DeepCopy() // the build reads the spec after this reconcile may have returned
	a, err := r.builds.build(ctx, r.Storage, o, key, res.Revision, spec.GetTimeout(), func(bctx context.Context) (*meta.Artifact, error) {
		release, err := r.hosts.Acquire(bctx, hostlimit.Key(remote.URL))
		if err != nil {
			return nil, err
		}
		defer release()
		var verified git.Verified
		a, err := r.Storage.Write(o, res.Revision, func(w io.Writer) (err error) {
			verified, err = r.writeTarball(bctx, spec, remote, res, pinned, included, v, w)
			return err
		})
		withVerified(a, verified)
		return a, err
	})
	if errors.Is(err, errBuildTimeout) {
		return nil, fmt.Errorf("building artifact for revision %s: %w", res.Revision, err)
	}
	return a, err
}

// writeTarball verifies the revision when v is set, before anything is written, and writes the
// tarball; it returns the signatures that passed.
func (r *GitRepositoryReconciler) writeTarball(ctx context.Context, obj *sourcev1.GitRepository, remote git.Remote, res git.Resolved, pinned bool, included []meta.Artifact, v *git.Verification, out io.Writer) (git.Verified, error) {
	w := artifact.NewWriter(out)
	opts := git.ArchiveOptions{Ignore: obj.Spec.Ignore, Sparse: obj.Spec.SparseCheckout, RecurseSubmodules: obj.Spec.RecurseSubmodules, Verify: v}
	for _, inc := range obj.Spec.Include {
		opts.Exclude = append(opts.Exclude, includeTarget(inc))
	}
	verified, err := git.Archive(ctx, remote, res, pinned, opts, w)
	if err != nil {
		return nil, err
	}
	for i, inc := range obj.Spec.Include {
		if err := r.copyIncluded(&included[i], inc, w); err != nil {
			return nil, err
		}
	}
	return verified, w.Close()
}

// copyIncluded copies fromPath of an included artifact to toPath of the one being written.
func (r *GitRepositoryReconciler) copyIncluded(a *meta.Artifact, inc sourcev1.GitRepositoryInclude, w *artifact.Writer) error {
	f, err := r.Storage.Open(a)
	if err != nil {
		return fmt.Errorf("include %s: %w", inc.Repository.Name, err)
	}
	defer f.Close()
	from := strings.Trim(path.Clean("/"+inc.FromPath), "/")
	to := includeTarget(inc)
	err = artifact.Walk(f, artifact.DefaultLimits, func(e artifact.Entry, body io.Reader) error {
		rel := e.Name
		if from != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(e.Name, from+"/"); !ok {
				return nil
			}
		}
		name := path.Join(to, rel)
		if e.Linkname != "" {
			return w.Symlink(name, e.Linkname)
		}
		return w.File(name, e.Executable, e.Size, body)
	})
	if err != nil {
		return fmt.Errorf("include %s: %w", inc.Repository.Name, err)
	}
	return nil
}

func includeTarget(inc sourcev1.GitRepositoryInclude) string {
	if inc.ToPath == "" {
		return inc.Repository.Name
	}
	return strings.Trim(path.Clean("/"+inc.ToPath), "/")
}

// validate checks what the CRD schema cannot.
func validate(obj *sourcev1.GitRepository) error {
	u := obj.Spec.URL
	if strings.Contains(u, "://") {
		parsed, err := url.Parse(u)
		if err != nil {
			// Only the cause: url.Error repeats the URL, which may hold a password.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("spec.url is not a valid URL: %v", err)
		}
		if parsed.Host == "" {
			return errors.New("spec.url has no host")
		}
	}
	bad := func(p string) bool {
		return path.IsAbs(p) || slices.Contains(strings.Split(p, "/"), "..")
	}
	for _, s := range obj.Spec.SparseCheckout {
		if bad(s) {
			return fmt.Errorf("spec.sparseCheckout %q must be a relative folder without '..'", s)
		}
	}
	targets := map[string]bool{}
	for _, inc := range obj.Spec.Include {
		if inc.Repository.Name == obj.Name {
			return errors.New("spec.include names this GitRepository itself")
		}
		if bad(inc.FromPath) || bad(inc.ToPath) {
			return fmt.Errorf("spec.include %s: fromPath and toPath must be relative folders without '..'", inc.Repository.Name)
		}
		t := includeTarget(inc)
		if t == "" {
			return fmt.Errorf("spec.include %s: toPath cannot be the root", inc.Repository.Name)
		}
		for other := range targets {
			if t == other || strings.HasPrefix(t, other+"/") || strings.HasPrefix(other, t+"/") {
				return fmt.Errorf("spec.include: two includes copy into %q and %q, one inside the other", other, t)
			}
		}
		targets[t] = true
	}
	return validateVerify(obj)
}

func gitStatus(obj *sourcev1.GitRepository) statusFields {
	return statusFields{Kind: sourcev1.GitRepositoryKind, Suspend: obj.Spec.Suspend,
		ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus}
}

func objectOf(obj *sourcev1.GitRepository) storage.Object {
	return storage.Object{Kind: sourcev1.GitRepositoryKind, Namespace: obj.Namespace, Name: obj.Name}
}

// buildKey identifies the content of an artifact before it is built, and the verification it
// passes: objects with other keys or modes never share a build.
func buildKey(obj *sourcev1.GitRepository, res git.Resolved, included []meta.Artifact, verify string) string {
	b, _ := json.Marshal(struct {
		URL, Commit, Ref string
		Ignore           *string
		Sparse           []string
		Submodules       bool
		Include          []sourcev1.GitRepositoryInclude
		Included         []string
		Verify           string `json:",omitempty"`
	}{obj.Spec.URL, res.Commit, string(res.RefName), obj.Spec.Ignore, obj.Spec.SparseCheckout, obj.Spec.RecurseSubmodules, obj.Spec.Include, digests(included), verify})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func digests(as []meta.Artifact) []string {
	out := make([]string, len(as))
	for i := range as {
		out[i] = as[i].Digest
	}
	return out
}

func equalPtr(a, b *string) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}
