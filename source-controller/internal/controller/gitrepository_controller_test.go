package controller

import (
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/artifact"
	plumbevents "github.com/plumb-dev/plumb/shared/events"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

const timeout = 30 * time.Second

func newGitRepository(ns, url, secret string, ref *sourcev1.GitRepositoryRef) *sourcev1.GitRepository {
	obj := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "repo-", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{
			URL:      url,
			Ref:      ref,
			Interval: metav1.Duration{Duration: time.Hour},
		},
	}
	if secret != "" {
		obj.Spec.SecretRef = &meta.LocalObjectReference{Name: secret}
	}
	return obj
}

func create(g *WithT, obj client.Object) {
	g.Expect(k8s.Create(context.Background(), obj)).To(Succeed())
}

func get[T sourceObject](g Gomega, obj T) T {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	return obj
}

// update changes obj as mutate says and writes it, reading it again when the controller wrote
// it in between (a status patch moves the resourceVersion, and the Update would conflict).
func update[T sourceObject](g Gomega, obj T, mutate func()) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate()
		return k8s.Update(context.Background(), obj)
	})).To(Succeed())
}

// waitReady waits until the object is Ready with an artifact of the revision.
func waitReady(g *WithT, obj sourceObject, revision string) {
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(conditions.IsReady(obj)).To(BeTrue(), "Ready: %v", conditions.GetMessage(obj, meta.ReadyCondition))
		g.Expect(obj.GetArtifact()).NotTo(BeNil())
		g.Expect(obj.GetArtifact().Revision).To(Equal(revision))
		g.Expect(observedGeneration(obj)).To(Equal(obj.GetGeneration()))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// waitFailed waits until Ready=False with the reason, and returns the message.
func waitFailed(g *WithT, obj sourceObject, reason string) string {
	var msg string
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(conditions.IsFalse(obj, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetReason(obj, meta.ReadyCondition)).To(Equal(reason), conditions.GetMessage(obj, meta.ReadyCondition))
		msg = conditions.GetMessage(obj, meta.ReadyCondition)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return msg
}

// requestReconcile sets the reconcile annotation to a new value and returns it.
func requestReconcile(g *WithT, obj sourceObject) string {
	v := time.Now().Format(time.RFC3339Nano)
	g.Expect(k8s.Patch(context.Background(), obj, plumbreconcile.RequestPatch(v))).To(Succeed())
	return v
}

// observedGeneration reads status.observedGeneration of any source kind.
func observedGeneration(obj sourceObject) int64 {
	switch o := obj.(type) {
	case *sourcev1.GitRepository:
		return o.Status.ObservedGeneration
	case *sourcev1.OCIRepository:
		return o.Status.ObservedGeneration
	case *sourcev1.HelmRepository:
		return o.Status.ObservedGeneration
	case *sourcev1.HelmChart:
		return o.Status.ObservedGeneration
	case *sourcev1.Bucket:
		return o.Status.ObservedGeneration
	}
	panic("unknown source kind")
}

// files downloads the artifact as a consumer would and returns its files' contents.
func files(g *WithT, a *meta.Artifact) map[string]string {
	f := &artifact.Fetcher{}
	data, err := f.Fetch(context.Background(), a)
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]string{}
	g.Expect(artifact.Walk(bytes.NewReader(data), artifact.DefaultLimits, func(e artifact.Entry, body io.Reader) error {
		b, err := io.ReadAll(body)
		out[e.Name] = string(b)
		if e.Linkname != "" {
			out[e.Name] = "-> " + e.Linkname
		}
		return err
	})).To(Succeed())
	return out
}

func names(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestGitRepository_BranchFollowsNewCommits(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"app/deploy.yaml": "kind: ConfigMap\n", ".github/ci.yml": "x"})
	first, _ := repo.repo.Head()
	obj := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "main"})
	create(g, obj)
	waitReady(g, obj, "main@sha1:"+first.Hash().String())

	a := obj.Status.Artifact
	g.Expect(a.Digest).To(HavePrefix("sha256:"))
	g.Expect(a.URL).To(HaveSuffix(strings.TrimPrefix(a.Digest, "sha256:") + ".tar.gz"))
	g.Expect(files(g, a)).To(Equal(map[string]string{"app/deploy.yaml": "kind: ConfigMap\n"}), "CI metadata is left out by default")
	g.Expect(conditions.Has(obj, meta.ReconcilingCondition)).To(BeFalse())
	g.Expect(finalizersOf(obj)).To(ContainElement(sourcev1.SourceFinalizer))
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		g.Expect(events.Items).To(ContainElement(SatisfyAll(
			HaveField("Regarding.Name", obj.Name),
			HaveField("Type", "Normal"),
			HaveField("Reason", sourcev1.SucceededReason),
			HaveField("ReportingController", "source-controller"),
			HaveField("ObjectMeta.Annotations", HaveKeyWithValue(plumbevents.RevisionAnnotation, a.Revision)),
		)))
	}, timeout).Should(Succeed())

	// A new commit is picked up at the reconcile request; the value is echoed in status.
	second := repo.commitAndPush(map[string]string{"app/deploy.yaml": "kind: Secret\n"})
	v := requestReconcile(g, obj)
	waitReady(g, obj, "main@sha1:"+second)
	g.Expect(obj.Status.LastHandledReconcileAt).To(Equal(v))
	g.Expect(files(g, obj.Status.Artifact)).To(HaveKeyWithValue("app/deploy.yaml", "kind: Secret\n"))

	// Metrics: the Ready gauge and the artifact size.
	id := map[string]string{"kind": sourcev1.GitRepositoryKind, "namespace": ns, "name": obj.Name}
	g.Eventually(func(g Gomega) {
		ready := maps.Clone(id)
		maps.Copy(ready, map[string]string{"type": "Ready", "status": "True"})
		v, ok := gauge("plumb_condition", ready)
		g.Expect(ok).To(BeTrue())
		g.Expect(v).To(Equal(1.0))
		size, ok := gauge("plumb_artifact_size_bytes", id)
		g.Expect(ok).To(BeTrue())
		g.Expect(size).To(BeNumerically("==", *obj.Status.Artifact.Size))
	}, timeout).Should(Succeed())

	// The previous artifact is kept (retention 2) and both are served.
	g.Expect(files(g, a)).To(HaveKeyWithValue("app/deploy.yaml", "kind: ConfigMap\n"))
}

func TestGitRepository_NoOpReconcileDoesNotFetch(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo, obj := readyGitRepository(t, g, ns, map[string]string{"a.yaml": "a: 1\n"})
	before := obj.Status.Artifact.DeepCopy()
	rv := obj.ResourceVersion

	fetches := repo.fetches()
	res, err := reconciler.Reconcile(context.Background(), requestFor(obj))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(BeNumerically(">=", time.Hour))
	g.Expect(repo.fetches()).To(Equal(fetches), "a no-op reconcile lists refs only")
	get(g, obj)
	g.Expect(obj.ResourceVersion).To(Equal(rv), "a no-op reconcile writes nothing")
	g.Expect(obj.Status.Artifact).To(Equal(before))
}

func TestGitRepository_SameContentIsFetchedOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"a.yaml": "a: 1\n"})
	head, _ := repo.repo.Head()
	secret := basicAuth(t, ns)
	first := newGitRepository(ns, repo.url, secret, nil)
	create(g, first)
	waitReady(g, first, "main@sha1:"+head.Hash().String())

	fetches := repo.fetches()
	second := newGitRepository(ns, repo.url, secret, nil)
	create(g, second)
	waitReady(g, second, "main@sha1:"+head.Hash().String())
	g.Expect(repo.fetches()).To(Equal(fetches), "the second GitRepository reuses the first one's build")
	g.Expect(second.Status.Artifact.Digest).To(Equal(first.Status.Artifact.Digest))
	g.Expect(second.Status.Artifact.URL).NotTo(Equal(first.Status.Artifact.URL))
	g.Expect(files(g, second.Status.Artifact)).To(Equal(map[string]string{"a.yaml": "a: 1\n"}))
}

func TestGitRepository_Refs(t *testing.T) {
	ns := newNamespace(t)
	secret := basicAuth(t, ns)
	repo := newRepo(t, map[string]string{"v": "0\n"})
	c1 := repo.commitAndPush(map[string]string{"v": "1\n"})
	repo.tag("v1.0.0", "")
	c2 := repo.commitAndPush(map[string]string{"v": "2\n"})
	repo.tag("v1.2.0", "release 1.2.0")
	repo.tag("not-a-version", "")
	c3 := repo.commitAndPush(map[string]string{"v": "3\n"})
	repo.tag("v2.0.0", "")
	feature := repo.branch("feature", map[string]string{"v": "feature\n"})

	cases := []struct {
		name     string
		ref      *sourcev1.GitRepositoryRef
		revision string
		content  string
	}{
		{"default branch", nil, "main@sha1:" + c3, "3\n"},
		{"branch", &sourcev1.GitRepositoryRef{Branch: "feature"}, "feature@sha1:" + feature, "feature\n"},
		{"lightweight tag", &sourcev1.GitRepositoryRef{Tag: "v1.0.0"}, "v1.0.0@sha1:" + c1, "1\n"},
		{"annotated tag", &sourcev1.GitRepositoryRef{Tag: "v1.2.0"}, "v1.2.0@sha1:" + c2, "2\n"},
		{"semver range", &sourcev1.GitRepositoryRef{SemVer: ">=1.0.0 <2.0.0"}, "v1.2.0@sha1:" + c2, "2\n"},
		{"semver beats tag", &sourcev1.GitRepositoryRef{SemVer: "1.0.x", Tag: "v2.0.0"}, "v1.0.0@sha1:" + c1, "1\n"},
		{"name", &sourcev1.GitRepositoryRef{Name: "refs/heads/feature"}, "refs/heads/feature@sha1:" + feature, "feature\n"},
		{"commit", &sourcev1.GitRepositoryRef{Commit: c1}, "sha1:" + c1, "1\n"},
		{"commit in branch", &sourcev1.GitRepositoryRef{Branch: "main", Commit: c2}, "main@sha1:" + c2, "2\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newGitRepository(ns, repo.url, secret, tc.ref)
			create(g, obj)
			waitReady(g, obj, tc.revision)
			g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"v": tc.content}))
		})
	}
}

func TestGitRepository_BadInput(t *testing.T) {
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"v": "1\n"})
	other := newRepo(t, map[string]string{"v": "1\n"})
	foreign := other.commitAndPush(map[string]string{"v": "2\n"})
	wrong := credentialsSecret(t, ns, map[string]string{"username": gitUser, "password": "wrong-password-123"})
	halfSecret := credentialsSecret(t, ns, map[string]string{"username": gitUser})

	cases := []struct {
		name    string
		obj     *sourcev1.GitRepository
		reason  string
		stalled bool
		msg     string
	}{
		{"no credentials", newGitRepository(ns, repo.url, "", nil), sourcev1.AuthenticationFailedReason, false, "list refs"},
		{"wrong password", newGitRepository(ns, repo.url, wrong, nil), sourcev1.AuthenticationFailedReason, false, "authentication"},
		{"secret without password", newGitRepository(ns, repo.url, halfSecret, nil), sourcev1.AuthenticationFailedReason, false, "`password`"},
		{"missing secret", newGitRepository(ns, repo.url, "nope", nil), sourcev1.AuthenticationFailedReason, false, "Secret " + ns + "/nope not found"},
		{"missing branch", newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "gone"}), sourcev1.RefNotFoundReason, false, "refs/heads/gone"},
		{"missing tag", newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Tag: "v9"}), sourcev1.RefNotFoundReason, false, "refs/tags/v9"},
		{"no semver match", newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{SemVer: ">=1.0"}), sourcev1.RefNotFoundReason, false, "no version tags"},
		{"commit not in repository", newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Commit: foreign}), sourcev1.RefNotFoundReason, false, foreign},
		{"invalid semver", newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{SemVer: "not a range!"}), sourcev1.InvalidSpecReason, true, "semver"},
		{"unreachable host", newGitRepository(ns, "http://127.0.0.1:1/repo.git", "", nil), sourcev1.GitOperationFailedReason, false, "127.0.0.1:1"},
		{"unparsable URL with a password", newGitRepository(ns, "http://user:pa%zzss@127.0.0.1/x.git", "", nil), sourcev1.InvalidSpecReason, true, "not a valid URL"},
		{"ssh without secret", newGitRepository(ns, "ssh://git@127.0.0.1:1/repo.git", "", nil), sourcev1.AuthenticationFailedReason, false, "identity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			create(g, tc.obj)
			msg := waitFailed(g, tc.obj, tc.reason)
			g.Expect(msg).To(ContainSubstring(tc.msg))
			g.Expect(msg).NotTo(ContainSubstring(gitPassword))
			g.Expect(msg).NotTo(ContainSubstring("wrong-password-123"))
			g.Expect(msg).NotTo(ContainSubstring("pa%zzss"))
			g.Expect(conditions.IsStalled(tc.obj)).To(Equal(tc.stalled))
			g.Expect(tc.obj.Status.Artifact).To(BeNil())
			if !tc.stalled {
				g.Expect(conditions.IsReconciling(tc.obj)).To(BeTrue(), "kstatus: still in progress while retrying")
			}
		})
	}
}

func TestGitRepository_SchemaRefusesBadSpecs(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, obj := range []*sourcev1.GitRepository{
		newGitRepository(ns, "ftp://example.invalid/repo", "", nil),
		newGitRepository(ns, "http://127.0.0.1/x", "", &sourcev1.GitRepositoryRef{Commit: "abc"}),
		newGitRepository(ns, "http://127.0.0.1/x", "", &sourcev1.GitRepositoryRef{Name: "heads/main"}),
	} {
		err := k8s.Create(context.Background(), obj)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	}
	selfish := newGitRepository(ns, "http://127.0.0.1/x", "", nil)
	selfish.GenerateName, selfish.Name = "", "selfish"
	selfish.Spec.Include = []sourcev1.GitRepositoryInclude{{Repository: meta.LocalObjectReference{Name: "selfish"}}}
	upward := newGitRepository(ns, "http://127.0.0.1/x", "", nil)
	upward.Spec.Include = []sourcev1.GitRepositoryInclude{{Repository: meta.LocalObjectReference{Name: "lib"}, ToPath: "a/../../b"}}
	sparse := newGitRepository(ns, "http://127.0.0.1/x", "", nil)
	sparse.Spec.SparseCheckout = []string{"apps", "/etc"}
	for _, obj := range []*sourcev1.GitRepository{selfish, upward, sparse} {
		err := k8s.Create(context.Background(), obj)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	}
	noInterval := newGitRepository(ns, "http://127.0.0.1/x", "", nil)
	noInterval.Spec.Interval = metav1.Duration{}
	g.Expect(apierrors.IsInvalid(k8s.Create(context.Background(), noInterval))).To(BeTrue())
}

// GitRepositories that include each other, however long the ring, stall instead of nesting
// their content in itself with every rebuild.
func TestGitRepository_IncludeCycleStalls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"v": "1\n"})
	names := []string{"ring-a", "ring-b", "ring-c"}
	var ring []*sourcev1.GitRepository
	for i, name := range names {
		obj := newGitRepository(ns, repo.url, basicAuth(t, ns), nil)
		obj.GenerateName, obj.Name = "", name
		obj.Spec.Include = []sourcev1.GitRepositoryInclude{{Repository: meta.LocalObjectReference{Name: names[(i+1)%len(names)]}, ToPath: "inc"}}
		create(g, obj)
		ring = append(ring, obj)
	}
	for _, obj := range ring {
		g.Expect(waitFailed(g, obj, sourcev1.InvalidSpecReason)).To(ContainSubstring("spec.include leads back to this GitRepository: " + obj.Name + " -> "))
		g.Expect(conditions.IsStalled(obj)).To(BeTrue())
	}
}

func TestGitRepository_FailureKeepsLastArtifact(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	_, obj := readyGitRepository(t, g, ns, map[string]string{"v": "1\n"})
	good := obj.Status.Artifact.DeepCopy()

	update(g, obj, func() {
		obj.Spec.Ref = &sourcev1.GitRepositoryRef{Branch: "missing"}
	})
	waitFailed(g, obj, sourcev1.RefNotFoundReason)
	g.Expect(obj.Status.Artifact).To(Equal(good))
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"v": "1\n"}))
}

func TestGitRepository_Suspend(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo, obj := readyGitRepository(t, g, ns, map[string]string{"v": "1\n"})
	first := obj.Status.Artifact.Revision

	update(g, obj, func() {
		obj.Spec.Suspend = true
	})
	repo.commitAndPush(map[string]string{"v": "2\n"})
	v := requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout).Should(Succeed())
	g.Expect(obj.Status.Artifact.Revision).To(Equal(first), "suspended: nothing fetched")

	update(g, obj, func() {
		obj.Spec.Suspend = false
	})
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.Artifact.Revision).NotTo(Equal(first))
	}, timeout).Should(Succeed())
}

func TestGitRepository_DeletionRemovesArtifacts(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	_, obj := readyGitRepository(t, g, ns, map[string]string{"v": "1\n"})
	path := filepath.Join(store.Root, obj.Status.Artifact.Path)
	g.Expect(path).To(BeAnExistingFile())

	g.Expect(k8s.Delete(context.Background(), obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj))
	}, timeout).Should(BeTrue())
	_, err := os.Stat(filepath.Dir(path))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "the object's artifact folder is gone")
}

func TestGitRepository_IgnoreSparseInclude(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	secret := basicAuth(t, ns)
	repo := newRepo(t, map[string]string{
		"apps/shop/deploy.yaml":   "shop\n",
		"apps/shop/notes.md":      "notes\n",
		"apps/blog/deploy.yaml":   "blog\n",
		"infra/ns.yaml":           "ns\n",
		"infra/.sourceignore":     "*.tmp\n",
		"infra/scratch.tmp":       "tmp\n",
		"run.sh":                  "#!/bin/sh\n",
		".github/workflows/x.yml": "ci\n",
	})
	head, _ := repo.repo.Head()
	rev := "main@sha1:" + head.Hash().String()

	ignore := "*.md\n/apps/blog/\n"
	ignored := newGitRepository(ns, repo.url, secret, nil)
	ignored.Spec.Ignore = &ignore
	create(g, ignored)
	waitReady(g, ignored, rev)
	g.Expect(names(files(g, ignored.Status.Artifact))).To(Equal([]string{
		".github/workflows/x.yml", "apps/shop/deploy.yaml", "infra/.sourceignore", "infra/ns.yaml", "run.sh",
	}), "spec.ignore replaces the defaults; .sourceignore still applies")
	g.Expect(ignored.Status.ObservedIgnore).To(Equal(&ignore))

	sparse := newGitRepository(ns, repo.url, secret, nil)
	sparse.Spec.SparseCheckout = []string{"apps/shop"}
	create(g, sparse)
	waitReady(g, sparse, rev)
	g.Expect(names(files(g, sparse.Status.Artifact))).To(Equal([]string{"apps/shop/deploy.yaml", "apps/shop/notes.md"}))

	lib := newRepo(t, map[string]string{"base/lib.yaml": "lib\n", "README": "readme\n"})
	libHead, _ := lib.repo.Head()
	libObj := newGitRepository(ns, lib.url, secret, nil)
	create(g, libObj)
	waitReady(g, libObj, "main@sha1:"+libHead.Hash().String())
	including := newGitRepository(ns, repo.url, secret, nil)
	including.Spec.SparseCheckout = []string{"infra"}
	including.Spec.Include = []sourcev1.GitRepositoryInclude{{
		Repository: meta.LocalObjectReference{Name: libObj.Name}, FromPath: "base", ToPath: "vendor/lib",
	}}
	create(g, including)
	waitReady(g, including, rev)
	g.Expect(files(g, including.Status.Artifact)).To(Equal(map[string]string{
		"infra/.sourceignore": "*.tmp\n", "infra/ns.yaml": "ns\n", "vendor/lib/lib.yaml": "lib\n",
	}))
	g.Expect(including.Status.IncludedArtifacts).To(HaveLen(1))

	// A new revision of the included repository rebuilds the including one.
	libNext := lib.commitAndPush(map[string]string{"base/lib.yaml": "lib v2\n"})
	requestReconcile(g, libObj)
	waitReady(g, libObj, "main@sha1:"+libNext)
	g.Eventually(func(g Gomega) {
		get(g, including)
		g.Expect(including.Status.IncludedArtifacts).To(HaveLen(1))
		g.Expect(including.Status.IncludedArtifacts[0].Revision).To(Equal("main@sha1:" + libNext))
	}, timeout).Should(Succeed())
	g.Expect(files(g, including.Status.Artifact)).To(HaveKeyWithValue("vendor/lib/lib.yaml", "lib v2\n"))
}

func TestGitRepository_BearerToken(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"v": "1\n"})
	// The test server speaks basic auth only; a bearer token reaches it as an Authorization
	// header, which a middleware of the server checks in front of it.
	tokenURL := bearerServer(t, repo.url, "tok-123456")
	head, _ := repo.repo.Head()
	good := newGitRepository(ns, tokenURL, credentialsSecret(t, ns, map[string]string{"bearerToken": "tok-123456"}), nil)
	create(g, good)
	waitReady(g, good, "main@sha1:"+head.Hash().String())

	bad := newGitRepository(ns, tokenURL, credentialsSecret(t, ns, map[string]string{"bearerToken": "tok-wrong"}), nil)
	create(g, bad)
	msg := waitFailed(g, bad, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).NotTo(ContainSubstring("tok-wrong"))
}

func requestFor(obj client.Object) ctrlRequest {
	return ctrlRequest{NamespacedName: client.ObjectKeyFromObject(obj)}
}

func finalizersOf(obj client.Object) []string { return obj.GetFinalizers() }

// readyGitRepository pushes a repository with files and waits until a GitRepository of its
// default branch is Ready.
func readyGitRepository(t *testing.T, g *WithT, ns string, files map[string]string) (*testRepo, *sourcev1.GitRepository) {
	t.Helper()
	repo := newRepo(t, files)
	head, err := repo.repo.Head()
	g.Expect(err).NotTo(HaveOccurred())
	obj := newGitRepository(ns, repo.url, basicAuth(t, ns), nil)
	create(g, obj)
	waitReady(g, obj, "main@sha1:"+head.Hash().String())
	return repo, obj
}

func TestGitRepository_PinnedCommitNeedsItsOwnCredentials(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"secret.yaml": "private\n"})
	head, _ := repo.repo.Head()
	pin := &sourcev1.GitRepositoryRef{Commit: head.Hash().String()}
	owner := newGitRepository(ns, repo.url, basicAuth(t, ns), pin)
	create(g, owner)
	waitReady(g, owner, "sha1:"+head.Hash().String())

	// Another namespace, same URL and commit, no credentials: the build is not shared.
	other := newGitRepository(newNamespace(t), repo.url, "", pin)
	create(g, other)
	waitFailed(g, other, sourcev1.AuthenticationFailedReason)
	g.Expect(other.Status.Artifact).To(BeNil())
}

func TestGitRepository_ContentErrorRecoversWithAFix(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"app.yaml": "a\n", "escape": "-> ../../etc/passwd"})
	obj := newGitRepository(ns, repo.url, basicAuth(t, ns), nil)
	create(g, obj)
	msg := waitFailed(g, obj, sourcev1.BuildFailedReason)
	g.Expect(msg).To(ContainSubstring("symlink escape"))
	g.Expect(msg).To(ContainSubstring("spec.ignore"))
	g.Expect(conditions.IsStalled(obj)).To(BeFalse(), "a new commit can fix it: keep retrying")
	g.Expect(conditions.IsReconciling(obj)).To(BeTrue())

	fixed := repo.commitAndPush(map[string]string{"escape": "", "inside": "-> app.yaml"})
	requestReconcile(g, obj)
	waitReady(g, obj, "main@sha1:"+fixed)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"app.yaml": "a\n", "inside": "-> app.yaml"}))
}

func TestGitRepository_RetentionKeepsTwoArtifacts(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo, obj := readyGitRepository(t, g, ns, map[string]string{"v": "0\n"})
	for i := 1; i <= 3; i++ {
		c := repo.commitAndPush(map[string]string{"v": strings.Repeat("x", i) + "\n"})
		requestReconcile(g, obj)
		waitReady(g, obj, "main@sha1:"+c)
	}
	entries, err := os.ReadDir(filepath.Join(store.Root, filepath.Dir(obj.Status.Artifact.Path)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(HaveLen(2), "the current artifact and the one before")
	g.Expect(store.Has(obj.Status.Artifact)).To(BeTrue())
}

func TestGitRepository_TokenInURLStaysSecret(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	token := "ghp_tok3n5ecr3tvalue"
	obj := newGitRepository(ns, "http://"+token+"@127.0.0.1:1/repo.git", "", nil)
	create(g, obj)
	msg := waitFailed(g, obj, sourcev1.GitOperationFailedReason)
	g.Expect(msg).To(ContainSubstring("127.0.0.1:1"))
	g.Expect(msg).NotTo(ContainSubstring(token))
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		g.Expect(events.Items).NotTo(BeEmpty())
		for _, e := range events.Items {
			g.Expect(e.Note).NotTo(ContainSubstring(token))
		}
	}, timeout).Should(Succeed())
}

// TestValidate covers the checks the reconciler repeats after the schema.
func TestValidate(t *testing.T) {
	inc := func(name, from, to string) sourcev1.GitRepositoryInclude {
		return sourcev1.GitRepositoryInclude{Repository: meta.LocalObjectReference{Name: name}, FromPath: from, ToPath: to}
	}
	cases := []struct {
		name string
		spec func(*sourcev1.GitRepository)
		msg  string
	}{
		{"valid", func(o *sourcev1.GitRepository) {
			o.Spec.Include = []sourcev1.GitRepositoryInclude{inc("a", "x", "vendor/a"), inc("b", "", "")}
		}, ""},
		{"no host", func(o *sourcev1.GitRepository) { o.Spec.URL = "http:///path" }, "no host"},
		{"include of itself", func(o *sourcev1.GitRepository) { o.Spec.Include = []sourcev1.GitRepositoryInclude{inc("me", "", "")} }, "itself"},
		{"include upwards", func(o *sourcev1.GitRepository) {
			o.Spec.Include = []sourcev1.GitRepositoryInclude{inc("a", "", "../x")}
		}, "without '..'"},
		{"sparse upwards", func(o *sourcev1.GitRepository) { o.Spec.SparseCheckout = []string{"a/../.."} }, "without '..'"},
		{"include into the root", func(o *sourcev1.GitRepository) { o.Spec.Include = []sourcev1.GitRepositoryInclude{inc("a", "", ".")} }, "root"},
		{"nested targets", func(o *sourcev1.GitRepository) {
			o.Spec.Include = []sourcev1.GitRepositoryInclude{inc("a", "", "vendor"), inc("b", "", "vendor/b")}
		}, "one inside the other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newGitRepository("ns", "https://127.0.0.1/r.git", "", nil)
			obj.Name = "me"
			tc.spec(obj)
			err := validate(obj)
			if tc.msg == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.msg)))
		})
	}
}
