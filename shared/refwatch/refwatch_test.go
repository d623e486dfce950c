package refwatch_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/plumb-dev/plumb/shared/refwatch"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// The referred kinds are the workspace's source CRDs, read as unstructured objects: shared
// imports no controller's API module. The referring objects are ConfigMaps whose data.source
// names one object and data.dependsOn several, each indexed as refwatch.Key values.
var (
	gitRepository = schema.GroupVersionKind{Group: "source.plumb.dev", Version: "v1beta1", Kind: "GitRepository"}
	ociRepository = schema.GroupVersionKind{Group: "source.plumb.dev", Version: "v1beta1", Kind: "OCIRepository"}
)

const sourceIndex, dependsIndex = ".data.source", ".data.dependsOn"

var (
	env        *testenv.Env
	mgr        ctrl.Manager
	testCtrl   controller.Controller           // has no watches of its own: only refwatch enqueues
	reconciles = &counter{n: map[string]int{}} // requests testCtrl reconciled, by namespace/name
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	var err error
	env, err = testenv.Start(testenv.Options{})
	must(err)
	defer func() { must(env.Stop()) }()
	mgr, err = ctrl.NewManager(env.Config, ctrl.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	must(err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for index, field := range map[string]string{sourceIndex: "source", dependsIndex: "dependsOn"} {
		must(mgr.GetFieldIndexer().IndexField(ctx, &corev1.ConfigMap{}, index, func(o client.Object) []string {
			return strings.Fields(o.(*corev1.ConfigMap).Data[field])
		}))
	}
	testCtrl, err = controller.New("refwatch-test", mgr, controller.Options{
		Reconciler: reconcile.Func(func(_ context.Context, r reconcile.Request) (reconcile.Result, error) {
			reconciles.add(r.String())
			return reconcile.Result{}, nil
		}),
	})
	must(err)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	must(<-done)
	return code
}

func TestKey(t *testing.T) {
	g := NewWithT(t)
	g.Expect(refwatch.Key("GitRepository", "apps", "shop")).To(Equal("GitRepository/apps/shop"))
	g.Expect(refwatch.Key("ClusterThing", "", "x")).To(Equal("ClusterThing//x"))
}

// Status parts in JSON, decoded as the API server's objects are (integers as int64); every
// object of the table tests is at generation 2.
const (
	ready    = `"observedGeneration":2,"conditions":[{"type":"Ready","status":"True","message":"a"}]`
	readyOld = `"observedGeneration":1,"conditions":[{"type":"Ready","status":"True"}]`
	notReady = `"observedGeneration":2,"conditions":[{"type":"Ready","status":"False"}]`
	art1     = `"artifact":{"revision":"main@sha1:1","digest":"sha256:1"}`
	history1 = `"history":[{"version":1,"status":"deployed"}]`
	history2 = `"history":[{"version":2,"status":"deployed"},{"version":1,"status":"superseded"}]`
)

func TestReadyAtGeneration(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		want         bool
	}{
		{"Ready at generation", ready, true},
		{"Ready at an older generation", readyOld, false},
		{"Ready, no observedGeneration", `"conditions":[{"type":"Ready","status":"True"}]`, true},
		{"Ready False", notReady, false},
		{"another condition True", `"observedGeneration":2,"conditions":[{"type":"Reconciling","status":"True"}]`, false},
		{"no conditions", `"observedGeneration":2`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(refwatch.ReadyAtGeneration(object(t, tc.status))).To(Equal(tc.want))
		})
	}
}

func TestArtifactOrReadyUpdate(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string // "nil" is a nil object
		want           bool
	}{
		{"first artifact", ``, art1, true},
		{"new artifact revision", art1, `"artifact":{"revision":"main@sha1:2","digest":"sha256:1"}`, true},
		{"new artifact digest", art1, `"artifact":{"revision":"main@sha1:1","digest":"sha256:2"}`, true},
		{"new revision, no digest", `"artifact":{"revision":"a"}`, `"artifact":{"revision":"b"}`, true},
		{"same artifact", art1, art1 + "," + notReady, false},
		{"artifact gone", art1, ``, false},
		{"turned Ready", notReady, ready, true},
		{"Ready caught up with the generation", readyOld, ready, true},
		{"Ready for an older generation", notReady, readyOld, false},
		{"still Ready, new message", ready, `"observedGeneration":2,"conditions":[{"type":"Ready","status":"True","message":"b"}]`, false},
		{"turned not Ready", ready, notReady, false},
		{"Ready, new lastAppliedRevision", ready + `,"lastAppliedRevision":"a"`, ready + `,"lastAppliedRevision":"b"`, true},
		{"not Ready, new lastAppliedRevision", notReady + `,"lastAppliedRevision":"a"`, notReady + `,"lastAppliedRevision":"b"`, false},
		{"Ready, new history[0]", ready + "," + history1, ready + "," + history2, true},
		{"Ready, only older history changed", ready + "," + history2, ready + `,"history":[{"version":2,"status":"deployed"}]`, false},
		{"nil old object", "nil", art1 + "," + ready, false},
		{"nil new object", notReady, "nil", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := event.TypedUpdateEvent[*unstructured.Unstructured]{ObjectOld: object(t, tc.old), ObjectNew: object(t, tc.new)}
			NewWithT(t).Expect(refwatch.ArtifactOrReady{}.Update(e)).To(Equal(tc.want))
		})
	}
}

func TestArtifactOrReadyPassesNoOtherEvent(t *testing.T) {
	g, p, u := NewWithT(t), refwatch.ArtifactOrReady{}, object(t, art1+","+ready)
	g.Expect(p.Create(event.TypedCreateEvent[*unstructured.Unstructured]{Object: u})).To(BeFalse())
	g.Expect(p.Delete(event.TypedDeleteEvent[*unstructured.Unstructured]{Object: u})).To(BeFalse())
	g.Expect(p.Generic(event.TypedGenericEvent[*unstructured.Unstructured]{Object: u})).To(BeFalse())
}

// object returns an object at generation 2 with the status fields, or nil for "nil".
func object(t *testing.T, status string) *unstructured.Unstructured {
	t.Helper()
	if status == "nil" {
		return nil
	}
	st := map[string]any{}
	check(t, utiljson.Unmarshal([]byte("{"+status+"}"), &st))
	u := &unstructured.Unstructured{Object: map[string]any{"status": st}}
	u.SetGeneration(2)
	return u
}

func TestWatcherEnqueuesReferrers(t *testing.T) {
	g, ctx := newG(t), context.Background()
	w, calls := newWatcher()
	ns := newNamespace(t)
	repo := create(t, gitRepository, ns, "repo", "http://127.0.0.1/none.git")
	referrer(t, ns, "user", map[string]string{"source": refwatch.Key("GitRepository", ns, "repo")})
	referrer(t, ns, "bystander", map[string]string{"source": refwatch.Key("GitRepository", ns, "other")})
	user, repoKey := ns+"/user", refwatch.Key("GitRepository", ns, "repo")

	// Reconciles meeting the kind at once start one watch, synced when Ensure returns.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { w.Ensure(ctx, gitRepository) })
	}
	wg.Wait()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gitRepository)
	inf, err := mgr.GetCache().GetInformer(ctx, u, cache.BlockUntilSynced(false))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(inf.HasSynced()).To(BeTrue())

	// A new artifact asks for the referrer. The MapFunc maps the old and the new object of an
	// update: 2 calls per event, 4 if two watches had started.
	setStatus(t, repo, "main@sha1:1", "")
	g.Eventually(func() int { return reconciles.get(user) }).Should(Equal(1))

	// Neither a new artifact nor a turn to Ready: nothing.
	setStatus(t, repo, "main@sha1:1", "False")
	g.Consistently(func() []int { return []int{reconciles.get(user), calls.get(repoKey)} }).Should(Equal([]int{1, 2}))

	// Turning Ready at its generation asks again.
	setStatus(t, repo, "main@sha1:1", "True")
	g.Eventually(func() int { return reconciles.get(user) }).Should(Equal(2))
	g.Expect(calls.get(repoKey)).To(Equal(4))
	g.Expect(reconciles.get(ns + "/bystander")).To(BeZero())
}

func TestEnsureSkipsKinds(t *testing.T) {
	g, ctx := newG(t), context.Background()
	w, calls := newWatcher(gitRepository.GroupKind())
	ns := newNamespace(t)
	git := create(t, gitRepository, ns, "git", "http://127.0.0.1/none.git")
	oci := create(t, ociRepository, ns, "oci", "oci://127.0.0.1/none")
	w.Ensure(ctx, gitRepository)
	w.Ensure(ctx, ociRepository)
	setStatus(t, git, "main@sha1:1", "")
	setStatus(t, oci, "latest@sha256:1", "")
	// The watched kind's event arrives; by then the skipped kind's would have too.
	g.Eventually(func() int { return calls.get(refwatch.Key("OCIRepository", ns, "oci")) }).Should(Equal(2))
	g.Consistently(func() int { return calls.get(refwatch.Key("GitRepository", ns, "git")) }).Should(BeZero())
}

func TestGet(t *testing.T) {
	g, ctx := newG(t), context.Background()
	w, _ := newWatcher()
	ns := newNamespace(t)
	c := mgr.GetClient()

	u, err := w.Get(ctx, c, gitRepository, types.NamespacedName{Namespace: ns, Name: "missing"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(u).To(BeNil())
	nope := schema.GroupVersionKind{Group: "nothing.example.com", Version: "v1", Kind: "Nope"}
	u, err = w.Get(ctx, c, nope, types.NamespacedName{Namespace: ns, Name: "x"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(u).To(BeNil())

	create(t, gitRepository, ns, "repo", "http://127.0.0.1/repo.git")
	for _, w := range []*refwatch.Watcher{w, nil} { // a nil Watcher only reads
		u, err = w.Get(ctx, c, gitRepository, types.NamespacedName{Namespace: ns, Name: "repo"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(u.GroupVersionKind()).To(Equal(gitRepository))
		g.Expect(u.Object).To(HaveKeyWithValue("spec", HaveKeyWithValue("url", "http://127.0.0.1/repo.git")))
	}

	// Other errors are returned (the kind is watched already: Ensure does not wait).
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = w.Get(cancelled, c, gitRepository, types.NamespacedName{Namespace: ns, Name: "repo"})
	g.Expect(err).To(MatchError(context.Canceled))
}

func TestReferrers(t *testing.T) {
	g, ctx := newG(t), context.Background()
	ns, other := newNamespace(t), newNamespace(t)
	repo, x := refwatch.Key("GitRepository", ns, "repo"), refwatch.Key("GitRepository", ns, "x")
	referrer(t, ns, "source", map[string]string{"source": repo})
	referrer(t, ns, "both", map[string]string{"source": repo, "dependsOn": repo}) // asked once
	referrer(t, ns, "dependency", map[string]string{"dependsOn": x + " " + repo})
	referrer(t, other, "remote", map[string]string{"source": repo}) // from another namespace
	referrer(t, ns, "elsewhere", map[string]string{"source": x})
	referrer(t, ns, "otherkind", map[string]string{"source": refwatch.Key("OCIRepository", ns, "repo")})

	referrers := configMapReferrers()
	of := func(kind, name string) func() []reconcile.Request {
		o := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		return func() []reconcile.Request { return referrers(kind)(ctx, o) }
	}
	g.Eventually(of("GitRepository", "repo")).Should(ConsistOf(
		request(ns, "source"), request(ns, "both"), request(ns, "dependency"), request(other, "remote")))
	g.Eventually(of("GitRepository", "x")).Should(ConsistOf(request(ns, "dependency"), request(ns, "elsewhere")))
	g.Eventually(of("OCIRepository", "repo")).Should(ConsistOf(request(ns, "otherkind")))
	g.Expect(of("GitRepository", "lonely")()).To(BeEmpty())
}

// newG returns gomega with deadlines fit for a control plane on a small machine.
func newG(t *testing.T) *WithT {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(10 * time.Second)
	g.SetDefaultConsistentlyDuration(time.Second)
	return g
}

// newWatcher returns a Watcher for testCtrl, and the calls of its MapFunc by referred object.
func newWatcher(skip ...schema.GroupKind) (*refwatch.Watcher, *counter) {
	calls := &counter{n: map[string]int{}}
	counted := func(kind string) handler.MapFunc {
		return func(ctx context.Context, o client.Object) []reconcile.Request {
			calls.add(refwatch.Key(kind, o.GetNamespace(), o.GetName()))
			return configMapReferrers()(kind)(ctx, o)
		}
	}
	return refwatch.New(testCtrl, mgr.GetCache(), mgr.GetRESTMapper(), counted, skip...), calls
}

func configMapReferrers() func(kind string) handler.MapFunc {
	newList := func() client.ObjectList { return &corev1.ConfigMapList{} }
	return refwatch.Referrers(mgr.GetClient(), newList, sourceIndex, dependsIndex)
}

// create creates a source of kind gvk, as unstructured.
func create(t *testing.T, gvk schema.GroupVersionKind, ns, name, url string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"url": url, "interval": "1h"}}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	check(t, env.Client.Create(context.Background(), u))
	return u
}

// setStatus sets, through the status subresource, an artifact at revision and, unless ready is
// "", a Ready condition of that status at the object's generation.
func setStatus(t *testing.T, u *unstructured.Unstructured, revision, ready string) {
	t.Helper()
	check(t, env.Client.Get(context.Background(), client.ObjectKeyFromObject(u), u))
	const at = "2026-01-01T00:00:00Z"
	status := map[string]any{"artifact": map[string]any{"revision": revision, "digest": "sha256:1",
		"path": "a.tar.gz", "url": "http://127.0.0.1/a.tar.gz", "lastUpdateTime": at}}
	if ready != "" {
		status["observedGeneration"] = u.GetGeneration()
		status["conditions"] = []any{map[string]any{"type": "Ready", "status": ready, "reason": "Test",
			"message": "test", "lastTransitionTime": at}}
	}
	u.Object["status"] = status
	check(t, env.Client.Status().Update(context.Background(), u))
}

// referrer creates a referring ConfigMap.
func referrer(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	check(t, env.Client.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}))
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "refwatch-"}}
	check(t, env.Client.Create(context.Background(), ns))
	return ns.Name
}

func request(ns, name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
}

// counter counts by key, safely across goroutines.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(key string) { c.mu.Lock(); c.n[key]++; c.mu.Unlock() }

func (c *counter) get(key string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.n[key] }

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func TestResolveDependency(t *testing.T) {
	own := schema.GroupVersionKind{Group: "apply.plumb.dev", Version: "v1beta1", Kind: "Kustomization"}
	for _, tc := range []struct {
		name                          string
		apiVersion, kind, ns, depName string
		want                          string
		wantErr                       bool
	}{
		{name: "defaults", depName: "infra", want: "apply.plumb.dev/v1beta1, Kind=Kustomization apps/infra"},
		{name: "other namespace", ns: "base", depName: "infra", want: "apply.plumb.dev/v1beta1, Kind=Kustomization base/infra"},
		{name: "other kind", apiVersion: "helm.plumb.dev/v1beta1", kind: "HelmRelease", depName: "db", want: "helm.plumb.dev/v1beta1, Kind=HelmRelease apps/db"},
		{name: "bad apiVersion", apiVersion: "a/b/c", depName: "x", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := refwatch.ResolveDependency(own, "apps", tc.apiVersion, tc.kind, tc.ns, tc.depName)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error: %v", err, tc.wantErr)
			}
			if got := d.GVK.String() + " " + d.Key.String(); !tc.wantErr && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	deps := []refwatch.Dependency{
		{GVK: own, Key: types.NamespacedName{Namespace: "a", Name: "x"}},
		{GVK: own.GroupVersion().WithKind("HelmRelease"), Key: types.NamespacedName{Namespace: "a", Name: "y"}},
		{GVK: schema.GroupVersionKind{Group: "apply.plumb.dev", Version: "v1", Kind: "Kustomization"}, Key: types.NamespacedName{Namespace: "a", Name: "z"}},
	}
	if got := refwatch.SameKind(own, deps); len(got) != 2 || got[0].Name != "x" || got[1].Name != "z" {
		t.Errorf("SameKind = %v, want x and z (any version of the kind)", got)
	}
}
