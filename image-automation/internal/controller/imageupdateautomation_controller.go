package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	gogit "github.com/go-git/go-git/v5"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/image-automation/internal/gitwork"
	"github.com/plumb-dev/plumb/image-automation/internal/setters"
	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/gitauth"
	"github.com/plumb-dev/plumb/shared/proxy"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/status"
)

// +kubebuilder:rbac:groups=image.plumb.dev,resources=imageupdateautomations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=image.plumb.dev,resources=imageupdateautomations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=image.plumb.dev,resources=imageupdateautomations/finalizers,verbs=update
// +kubebuilder:rbac:groups=source.plumb.dev,resources=gitrepositories,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create

// GitRepositoryGVK is the kind automations push to, read as unstructured: image-automation
// does not depend on source-controller's API, only on the fields of the contract it reads.
var GitRepositoryGVK = schema.GroupVersionKind{Group: "source.plumb.dev", Version: "v1beta1", Kind: "GitRepository"}

// ImageUpdateAutomationReconciler writes the images that ImagePolicies choose into Git.
type ImageUpdateAutomationReconciler struct {
	client.Client
	// APIReader reads GitRepositories and Secrets, which are not cached.
	APIReader client.Reader
	Events    recorder.EventRecorder
	// WorkDir holds a working copy per automation, kept between runs.
	WorkDir string
	// ControllerName is the field owner of status patches.
	ControllerName string
	// NoCrossNamespaceRefs refuses a sourceRef in another namespace than the automation's.
	NoCrossNamespaceRefs bool
}

// SetupWithManager registers the reconciler: it runs on spec changes, reconcile requests, its
// interval, and at once when a policy of its namespace chooses a new image.
func (r *ImageUpdateAutomationReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&imagev1.ImageUpdateAutomation{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		Watches(&imagev1.ImagePolicy{}, handler.EnqueueRequestsFromMapFunc(r.automationsOf), builder.WithPredicates(latestChanged{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// latestChanged passes an ImagePolicy whose latestRef changed.
type latestChanged struct{ predicate.Funcs }

func (latestChanged) Create(e event.CreateEvent) bool { return false }
func (latestChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*imagev1.ImagePolicy)
	n, ok2 := e.ObjectNew.(*imagev1.ImagePolicy)
	if !ok1 || !ok2 || n.Status.LatestRef == nil {
		return false
	}
	return o.Status.LatestRef == nil || *o.Status.LatestRef != *n.Status.LatestRef
}

// automationsOf enqueues the automations of the policy's namespace that select it.
func (r *ImageUpdateAutomationReconciler) automationsOf(ctx context.Context, o client.Object) []reconcile.Request {
	var list imagev1.ImageUpdateAutomationList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, a := range list.Items {
		sel, err := selectorOf(&a)
		if err != nil || !sel.Matches(labels.Set(o.GetLabels())) {
			continue
		}
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
	}
	return out
}

func selectorOf(a *imagev1.ImageUpdateAutomation) (labels.Selector, error) {
	if a.Spec.PolicySelector == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(a.Spec.PolicySelector)
}

// Reconcile runs the automation: sync the working copy, rewrite the markers, commit and push.
func (r *ImageUpdateAutomationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &imagev1.ImageUpdateAutomation{}
	if found, err := status.Get(ctx, r.Client, imagev1.ImageUpdateAutomationKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		status.Finish(ctx, obj, status.Fields{Kind: imagev1.ImageUpdateAutomationKind, Suspend: obj.Spec.Suspend,
			ObservedGeneration: &obj.Status.ObservedGeneration, Requests: &obj.Status.ReconcileRequestStatus}, patcher, r.ControllerName, &result, &retErr)
	}()
	if !obj.DeletionTimestamp.IsZero() {
		// The working copy goes with the automation.
		if err := os.RemoveAll(r.workingCopy(obj)); err != nil {
			return ctrl.Result{}, err
		}
		if err := os.Remove(pendingFile(r.workingCopy(obj))); err != nil && !errors.Is(err, fs.ErrNotExist) {
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

// automationRun is what one automation run needs, read from the API.
type automationRun struct {
	remote   gitauth.Remote
	ref      gitwork.Ref // checked out
	push     string      // pushed to
	refspec  string
	options  map[string]string
	path     string
	refs     map[string]setters.Ref
	observed map[string]imagev1.ImageRef
	author   gitwork.Author
	message  *template.Template
}

func (r *ImageUpdateAutomationReconciler) reconcile(ctx context.Context, obj *imagev1.ImageUpdateAutomation) (ctrl.Result, error) {
	if obj.Generation != obj.Status.ObservedGeneration {
		conditions.MarkReconciling(obj, imagev1.ProgressingReason, "running generation %d", obj.Generation)
	}
	ctx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	job, err := r.prepare(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	dir := r.workingCopy(obj)
	pushed, res, err := r.updateAndPush(ctx, obj, dir, job)
	if errors.Is(err, gitwork.ErrNonFastForward) {
		// Someone pushed in between: start again from their commit, once.
		pushed, res, err = r.updateAndPush(ctx, obj, dir, job)
	}
	r.reportLeftAlone(obj, res)
	if err != nil {
		if errors.Is(err, reconcile.TerminalError(nil)) {
			return ctrl.Result{}, err // already reported as a stall
		}
		reason := imagev1.GitOperationFailedReason
		switch {
		case errors.Is(err, gitwork.ErrNonFastForward), errors.Is(err, gitwork.ErrPush):
			reason = imagev1.PushFailedReason
		case errors.Is(err, errUpdate):
			reason = imagev1.UpdateFailedReason
		}
		return ctrl.Result{}, status.Fail(r.Events, obj, "", reason, err)
	}
	now := metav1.Now()
	obj.Status.LastAutomationRunTime = &now
	obj.Status.ObservedPolicies = job.observed
	switch {
	case pushed != "" && res.landed:
		obj.Status.LastPushCommit = pushed
		obj.Status.LastPushTime = &now
		events.Record(r.Events, obj, job.push+"@sha1:"+pushed, corev1.EventTypeNormal, imagev1.SucceededReason,
			"pushed commit %s to %s: the run that pushed it stopped before the answer; it is on the branch", short(pushed), job.push)
		conditions.MarkTrue(obj, meta.ReadyCondition, imagev1.SucceededReason, "pushed commit %s to %s (found on the branch after an interrupted run)%s", short(pushed), job.push, leftAlone(res))
	case pushed != "":
		obj.Status.LastPushCommit = pushed
		obj.Status.LastPushTime = &now
		events.Record(r.Events, obj, job.push+"@sha1:"+pushed, corev1.EventTypeNormal, imagev1.SucceededReason,
			"pushed commit %s to %s: %s", short(pushed), job.push, summary(res))
		conditions.MarkTrue(obj, meta.ReadyCondition, imagev1.SucceededReason, "pushed commit %s to %s%s", short(pushed), job.push, leftAlone(res))
	default:
		conditions.MarkTrue(obj, meta.ReadyCondition, imagev1.SucceededReason, "no change to push: %s is up to date%s", res.start, leftAlone(res))
	}
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(obj.Spec.Interval.Duration)}, nil
}

// errUpdate marks a failure to read or write the files under update.path.
var errUpdate = errors.New("updating files")

// runResult is what a run changed, with paths from the repository's root.
type runResult struct {
	setters.Result
	start string // the branch the run started from
	// landed says that the commit returned as pushed is one an earlier run pushed without
	// seeing the answer (it was stopped), found on the branch by this run.
	landed bool
}

func (r *ImageUpdateAutomationReconciler) workingCopy(obj *imagev1.ImageUpdateAutomation) string {
	return filepath.Join(r.WorkDir, obj.Namespace, obj.Name)
}

// updateAndPush syncs the working copy, rewrites the markers, and commits and pushes the
// change if there is one; it returns the commit pushed (empty for none).
func (r *ImageUpdateAutomationReconciler) updateAndPush(ctx context.Context, obj *imagev1.ImageUpdateAutomation, dir string, job automationRun) (string, runResult, error) {
	clone, err := gitwork.Sync(ctx, dir, job.remote, job.ref, job.push)
	if err != nil {
		return "", runResult{}, err
	}
	res := runResult{start: clone.Start}
	root, rel, err := updateRoot(clone.Dir(), job.path)
	if err != nil {
		return "", res, err
	}
	res.Result, err = setters.Update(root, job.refs)
	if err != nil {
		return "", res, fmt.Errorf("%w under %q: %v", errUpdate, job.path, err)
	}
	res.fromRoot(rel)
	pending, err := readPending(dir)
	if err != nil {
		return "", res, err
	}
	if len(res.Files) == 0 {
		// A push of an earlier run that was stopped before its answer: if it landed, that run's
		// commit is what this automation last pushed.
		if pending != "" && pending != obj.Status.LastPushCommit && clone.Holds(pending) {
			res.landed = true
			return pending, res, clearPending(dir)
		}
		return "", res, clearPending(dir)
	}
	var msg bytes.Buffer
	if err := job.message.Execute(&msg, templateData(obj, res)); err != nil {
		return "", res, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, "messageTemplate: "+err.Error())
	}
	h, err := clone.Commit(res.Files, msg.String(), job.author)
	if err != nil {
		return "", res, err
	}
	// The commit is noted before the push, so that a run stopped before the push's answer (a
	// killed process, a lost connection) lets the next run tell whether it landed.
	if err := writePending(dir, h.String()); err != nil {
		return "", res, err
	}
	if err := clone.Push(ctx, job.push, job.refspec, job.options); err != nil {
		return "", res, err
	}
	return h.String(), res, clearPending(dir)
}

// pendingFile is where the commit of a push under way is noted, beside the working copy dir
// (not in it: a sync drops whatever the working copy holds).
func pendingFile(dir string) string { return dir + ".pushing" }

// readPending returns the commit of a push that was under way when its run stopped, if any.
func readPending(dir string) (string, error) {
	b, err := os.ReadFile(pendingFile(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the note of an interrupted push: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writePending(dir, commit string) error {
	if err := os.WriteFile(pendingFile(dir), []byte(commit+"\n"), 0o600); err != nil {
		return fmt.Errorf("noting the commit to push: %w", err)
	}
	return nil
}

func clearPending(dir string) error {
	if err := os.Remove(pendingFile(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the note of a push: %w", err)
	}
	return nil
}

// prepare reads the GitRepository, its credentials, the policies and the signing key; errors
// are already reported on obj.
func (r *ImageUpdateAutomationReconciler) prepare(ctx context.Context, obj *imagev1.ImageUpdateAutomation) (automationRun, error) {
	var job automationRun
	if v, want := obj.Spec.SourceRef.APIVersion, GitRepositoryGVK.GroupVersion().String(); v != "" && v != want {
		return job, status.Stall(r.Events, obj, imagev1.InvalidSpecReason,
			fmt.Sprintf("spec.sourceRef.apiVersion %q: the GitRepository is source-controller's; set apiVersion: %s or leave it out", v, want))
	}
	tmpl := obj.Spec.Git.Commit.MessageTemplate
	if tmpl == "" {
		tmpl = defaultMessage
	}
	t, err := template.New("message").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return job, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, "messageTemplate: "+err.Error())
	}
	// A template that parses can still fail on the data: find out now, not after a change.
	if err := t.Execute(io.Discard, sampleData(obj)); err != nil {
		return job, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, "messageTemplate: "+err.Error())
	}
	job.message = t
	if u := obj.Spec.Update; u != nil {
		job.path = path.Clean("/" + filepath.ToSlash(u.Path))[1:] // "", "apps", "apps/prod"
		if rel := filepath.ToSlash(filepath.Clean(filepath.FromSlash(u.Path))); rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(u.Path) {
			return job, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, fmt.Sprintf("update.path %q leaves the repository", u.Path))
		}
	}

	if c := obj.Spec.Git.Checkout; c != nil && c.Ref.SemVer != "" {
		if _, err := semver.NewConstraint(c.Ref.SemVer); err != nil {
			return job, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, fmt.Sprintf("git.checkout.ref.semver %q: %v", c.Ref.SemVer, err))
		}
	}
	key := types.NamespacedName{Namespace: obj.Spec.SourceRef.Namespace, Name: obj.Spec.SourceRef.Name}
	if key.Namespace == "" {
		key.Namespace = obj.Namespace
	}
	if key.Namespace != obj.Namespace && r.NoCrossNamespaceRefs {
		return job, status.Stall(r.Events, obj, imagev1.AccessDeniedReason,
			fmt.Sprintf("spec.sourceRef in namespace %s: cross-namespace references are disabled (--no-cross-namespace-refs)", key.Namespace))
	}
	src := &unstructured.Unstructured{}
	src.SetGroupVersionKind(GitRepositoryGVK)
	if err := r.APIReader.Get(ctx, key, src); err != nil {
		if apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err) {
			return job, status.Fail(r.Events, obj, "", imagev1.DependencyNotReadyReason, fmt.Errorf("GitRepository %s not found", key))
		}
		return job, status.Fail(r.Events, obj, "", imagev1.DependencyNotReadyReason, fmt.Errorf("reading GitRepository %s: %w", key, err))
	}
	url, _, _ := unstructured.NestedString(src.Object, "spec", "url")
	job.ref = sourceRef(src)
	if c := obj.Spec.Git.Checkout; c != nil {
		job.ref = gitwork.Ref{Branch: c.Ref.Branch, Tag: c.Ref.Tag, SemVer: c.Ref.SemVer, Name: c.Ref.Name, Commit: c.Ref.Commit}
	}
	if job.ref == (gitwork.Ref{}) {
		// Retried: the GitRepository may change, and it is not watched.
		return job, status.Fail(r.Events, obj, "", imagev1.InvalidSpecReason,
			fmt.Errorf("GitRepository %s names no ref; set git.checkout.ref", key))
	}
	if job.ref.IsBranch() {
		job.push = job.ref.Branch
	}
	if p := obj.Spec.Git.Push; p != nil {
		if p.Branch != "" {
			job.push = p.Branch
		}
		job.refspec = p.Refspec
		job.options = p.Options
		if p.Refspec != "" {
			if err := gitwork.ValidateRefspec(p.Refspec); err != nil {
				return job, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, "git.push.refspec: "+err.Error())
			}
		}
	}
	if job.push == "" {
		// The schema refuses this for git.checkout; the GitRepository's own ref may still be a
		// tag or a commit, and it is not watched: retried.
		return job, status.Fail(r.Events, obj, "", imagev1.InvalidSpecReason,
			fmt.Errorf("GitRepository %s checks out %s, which cannot be pushed to; set git.push.branch", key, job.ref))
	}
	// The push uses the GitRepository's credentials: its Secret, its provider (a GitHub App's
	// installation token, from the same process-wide cache as every fetch) and its proxy.
	provider, _, _ := unstructured.NestedString(src.Object, "spec", "provider")
	sa, _, _ := unstructured.NestedString(src.Object, "spec", "serviceAccountName")
	// They live in the GitRepository's namespace, which may be another one.
	creds := gitauth.Source{Provider: provider, Client: r.Client, Namespace: key.Namespace, ServiceAccountName: sa}
	if name, _, _ := unstructured.NestedString(src.Object, "spec", "secretRef", "name"); name != "" {
		s, err := r.secret(ctx, key.Namespace, name, "GitRepository credentials")
		if err != nil {
			return job, status.Fail(r.Events, obj, "", imagev1.AuthenticationFailedReason, err)
		}
		creds.Secret = s.Data
	}
	if name, _, _ := unstructured.NestedString(src.Object, "spec", "proxySecretRef", "name"); name != "" {
		if creds.Proxy, err = proxy.FromSecret(ctx, r.APIReader, key.Namespace, name); err != nil {
			return job, status.Fail(r.Events, obj, "", imagev1.ProxyFailedReason, err)
		}
	}
	job.remote, err = gitauth.ProviderRemote(ctx, url, creds)
	if err != nil {
		reason := imagev1.AuthenticationFailedReason
		switch {
		case errors.Is(err, gitauth.ErrInvalid):
			reason = imagev1.InvalidSpecReason // of the GitRepository: retried, as it is not watched
		case errors.Is(err, proxy.ErrProxy):
			reason = imagev1.ProxyFailedReason
		case !errors.Is(err, gitauth.ErrAuth):
			reason = imagev1.GitOperationFailedReason // the token service failed
		}
		return job, status.Fail(r.Events, obj, "", reason, err)
	}
	a := obj.Spec.Git.Commit.Author
	job.author = gitwork.Author{Name: a.Name, Email: a.Email}
	if a.Name == "" {
		job.author.Name = "plumb"
	}
	if k := obj.Spec.Git.Commit.SigningKey; k != nil {
		s, err := r.secret(ctx, obj.Namespace, k.SecretName(), "signing key")
		if err != nil {
			return job, status.Fail(r.Events, obj, "", imagev1.AuthenticationFailedReason, err)
		}
		job.author.SignKey, job.author.Signer, err = signer(s.Data, k.Type)
		if err != nil {
			return job, status.Fail(r.Events, obj, "", imagev1.AuthenticationFailedReason, fmt.Errorf("signing key Secret %s/%s: %w", obj.Namespace, k.SecretName(), err))
		}
	}
	job.refs, job.observed, err = r.policies(ctx, obj)
	if err != nil {
		return job, err
	}
	return job, nil
}

// updateRoot is the folder of update.path in the working copy with symbolic links resolved, and
// its slash path from the repository's root; a folder that a link leads out of the working copy
// is refused.
func updateRoot(dir, rel string) (string, string, error) {
	base, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", "", err
	}
	root, err := filepath.EvalSymlinks(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return "", "", fmt.Errorf("%w: update.path %q: %v", errUpdate, rel, errors.Unwrap(err))
	}
	inside, err := filepath.Rel(base, root)
	if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
		return "", "", fmt.Errorf("%w: update.path %q leads out of the repository through a symbolic link", errUpdate, rel)
	}
	if inside == "." {
		inside = ""
	}
	return root, filepath.ToSlash(inside), nil
}

// fromRoot makes the paths of a run relative to the repository's root instead of update.path.
func (res *runResult) fromRoot(rel string) {
	if rel == "" {
		return
	}
	join := func(f string) string { return path.Join(rel, f) }
	for i := range res.Files {
		res.Files[i] = join(res.Files[i])
	}
	for i := range res.Changes {
		res.Changes[i].File = join(res.Changes[i].File)
	}
	for i := range res.Missing {
		res.Missing[i].File = join(res.Missing[i].File)
	}
	for i := range res.Skipped {
		res.Skipped[i].File = join(res.Skipped[i].File)
	}
}

// leftAlone says how many markers and files a run left alone, for the Ready message.
func leftAlone(res runResult) string {
	if n := len(res.Missing) + len(res.Skipped); n > 0 {
		return fmt.Sprintf("; %d markers or files left alone (see the Warning events)", n)
	}
	return ""
}

// sampleData is template data with one change of each list, to try a template before a run.
func sampleData(obj *imagev1.ImageUpdateAutomation) TemplateData {
	o := setters.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "app"}
	return TemplateData{AutomationObject: obj.Namespace + "/" + obj.Name, Files: []string{"deploy.yaml"}, Objects: []setters.ObjectRef{o},
		Changes: []TemplateChange{{File: "deploy.yaml", Object: o, Policy: "default:app", OldValue: "app:1.0.0", NewValue: "app:1.1.0"}},
		Values:  obj.Spec.Git.Commit.MessageTemplateValues}
}

// reportLeftAlone records a Warning event per run for the markers and files left alone.
func (r *ImageUpdateAutomationReconciler) reportLeftAlone(obj *imagev1.ImageUpdateAutomation, res runResult) {
	var lines []string
	for _, m := range res.Missing {
		lines = append(lines, fmt.Sprintf("%s line %d: ImagePolicy %s does not exist, is not selected by policySelector, or has not chosen an image yet", m.File, m.Line, m.Policy))
	}
	for _, s := range res.Skipped {
		where := s.File
		if s.Line > 0 {
			where = fmt.Sprintf("%s line %d", s.File, s.Line)
		}
		lines = append(lines, where+": "+s.Reason)
	}
	if len(lines) == 0 {
		return
	}
	const most = 5
	msg := strings.Join(lines[:min(most, len(lines))], "; ")
	if len(lines) > most {
		msg += fmt.Sprintf("; and %d more", len(lines)-most)
	}
	events.Record(r.Events, obj, "", corev1.EventTypeWarning, imagev1.UpdateFailedReason, "left alone: %s", msg)
}

// policies returns the latest images of the selected ImagePolicies, by "namespace:name" for the
// markers and by name for the status.
func (r *ImageUpdateAutomationReconciler) policies(ctx context.Context, obj *imagev1.ImageUpdateAutomation) (map[string]setters.Ref, map[string]imagev1.ImageRef, error) {
	sel, err := selectorOf(obj)
	if err != nil {
		return nil, nil, status.Stall(r.Events, obj, imagev1.InvalidSpecReason, "policySelector: "+err.Error())
	}
	var list imagev1.ImagePolicyList
	if err := r.List(ctx, &list, client.InNamespace(obj.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, nil, status.Fail(r.Events, obj, "", meta.FailedReason, fmt.Errorf("listing ImagePolicies: %w", err))
	}
	refs := map[string]setters.Ref{}
	observed := map[string]imagev1.ImageRef{}
	for _, p := range list.Items {
		l := p.Status.LatestRef
		if l == nil {
			continue
		}
		refs[p.Namespace+":"+p.Name] = setters.Ref{Name: l.Name, Tag: l.Tag, Digest: l.Digest}
		observed[p.Name] = *l
	}
	return refs, observed, nil
}

func (r *ImageUpdateAutomationReconciler) secret(ctx context.Context, namespace, name, purpose string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: namespace, Name: name}
	if err := r.APIReader.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%s Secret %s not found", purpose, key)
		}
		return nil, fmt.Errorf("%s Secret %s: %w", purpose, key, err)
	}
	return s, nil
}

// signer reads the signing key Secret: an OpenPGP key in `git.asc` or an SSH key in `identity`,
// decrypted with `passphrase` (or, for SSH, Flux's `password`). typ (gpg or ssh) says which key
// signs; unset, the one the Secret holds.
func signer(data map[string][]byte, typ string) (*openpgp.Entity, gogit.Signer, error) {
	_, pgp := data["git.asc"]
	key, ssh := data["identity"]
	switch typ {
	case imagev1.SigningKeyTypeGPG:
		if !pgp {
			return nil, nil, errors.New("no git.asc (OpenPGP) key, which type gpg needs")
		}
		ssh = false
	case imagev1.SigningKeyTypeSSH:
		if !ssh {
			return nil, nil, errors.New("no identity (SSH) key, which type ssh needs")
		}
		pgp = false
	}
	switch {
	case pgp && ssh:
		return nil, nil, errors.New("holds both git.asc and identity; keep the one key that signs, or set signingKey.type")
	case ssh:
		pass, ok := data["password"]
		if !ok {
			pass = data["passphrase"]
		}
		s, err := gitwork.NewSSHSigner(key, pass)
		if err != nil {
			return nil, nil, fmt.Errorf("identity: %w", err)
		}
		return nil, s, nil
	}
	e, err := signingKey(data)
	return e, nil, err
}

// signingKey reads an armored private key from `git.asc`, decrypting it with `passphrase`.
func signingKey(data map[string][]byte) (*openpgp.Entity, error) {
	armored, ok := data["git.asc"]
	if !ok {
		return nil, errors.New("no git.asc (OpenPGP) or identity (SSH) key")
	}
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil || len(ring) == 0 {
		return nil, errors.New("git.asc is not an armored OpenPGP key")
	}
	e := ring[0]
	if e.PrivateKey == nil {
		return nil, errors.New("git.asc holds a public key only")
	}
	pass := data["passphrase"]
	if e.PrivateKey.Encrypted {
		if len(pass) == 0 {
			return nil, errors.New("git.asc is encrypted and the Secret has no passphrase")
		}
		if err := e.PrivateKey.Decrypt(pass); err != nil {
			return nil, errors.New("passphrase does not decrypt git.asc")
		}
	}
	for _, sub := range e.Subkeys {
		if sub.PrivateKey != nil && sub.PrivateKey.Encrypted && len(pass) > 0 {
			_ = sub.PrivateKey.Decrypt(pass)
		}
	}
	return e, nil
}

// sourceRef is the GitRepository's spec.ref, read as unstructured.
func sourceRef(src *unstructured.Unstructured) gitwork.Ref {
	get := func(f string) string {
		v, _, _ := unstructured.NestedString(src.Object, "spec", "ref", f)
		return v
	}
	return gitwork.Ref{Branch: get("branch"), Tag: get("tag"), SemVer: get("semver"), Name: get("name"), Commit: get("commit")}
}

// defaultMessage sums the change up for a person reading the Git log.
const defaultMessage = `Update images of {{ .AutomationObject }}
{{ range .Changes }}
- {{ .File }}: {{ .OldValue }} -> {{ .NewValue }} ({{ .Policy }})
{{- end }}
`

// TemplateData is what a messageTemplate sees.
type TemplateData struct {
	AutomationObject string
	Changes          []TemplateChange
	Files            []string
	Objects          []setters.ObjectRef
	// Values are spec.git.commit.messageTemplateValues.
	Values map[string]string
}

// TemplateChange is one rewritten value.
type TemplateChange struct {
	File     string
	Object   setters.ObjectRef
	Policy   string
	OldValue string
	NewValue string
}

func templateData(obj *imagev1.ImageUpdateAutomation, res runResult) TemplateData {
	d := TemplateData{AutomationObject: obj.Namespace + "/" + obj.Name, Files: res.Files, Values: obj.Spec.Git.Commit.MessageTemplateValues}
	seen := map[setters.ObjectRef]bool{}
	for _, c := range res.Changes {
		d.Changes = append(d.Changes, TemplateChange{File: c.File, Object: c.Object, Policy: c.Policy, OldValue: c.Old, NewValue: c.New})
		if !seen[c.Object] && c.Object.Kind != "" {
			seen[c.Object] = true
			d.Objects = append(d.Objects, c.Object)
		}
	}
	sort.Slice(d.Objects, func(i, j int) bool {
		a, b := d.Objects[i], d.Objects[j]
		return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
	})
	return d
}

// summary is one line about the changes, for events.
func summary(res runResult) string {
	if len(res.Changes) == 1 {
		c := res.Changes[0]
		return fmt.Sprintf("%s: %s -> %s", c.File, c.Old, c.New)
	}
	return fmt.Sprintf("%d values in %d files", len(res.Changes), len(res.Files))
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
