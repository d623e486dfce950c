package controller

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/objcache"
)

// shardLabel marks the Kustomizations that a test's own reconciler (startShard) handles; the
// suite's reconciler leaves them alone.
const shardLabel = "plumb.test/shard"

// requestLog lists the API requests made under a context (countRequests), as "METHOD path"
// ("METHOD path?dryRun" for a dry-run).
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reqs...)
}

// writesTo returns the writes whose path contains part.
func (l *requestLog) writesTo(part string) []string {
	var out []string
	for _, r := range l.all() {
		if !strings.HasPrefix(r, "GET ") && strings.Contains(r, part) {
			out = append(out, r)
		}
	}
	return out
}

func (l *requestLog) matching(prefix string) []string {
	var out []string
	for _, r := range l.all() {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}

type requestLogKey struct{}

// countRequests returns a context under which every request of the reconcilers' clients (a
// countingConfig) is logged.
func countRequests() (context.Context, *requestLog) {
	l := &requestLog{}
	return context.WithValue(context.Background(), requestLogKey{}, l), l
}

// countingConfig logs the requests made under a countRequests context, and every request in
// all when it is not nil.
func countingConfig(cfg *rest.Config, all ...*requestLog) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			l, ok := req.Context().Value(requestLogKey{}).(*requestLog)
			if !ok && len(all) > 0 {
				l, ok = all[0], true
			}
			if ok {
				l.mu.Lock()
				entry := req.Method + " " + req.URL.Path
				if req.URL.Query().Has("dryRun") {
					entry += "?dryRun"
				}
				l.reqs = append(l.reqs, entry)
				l.mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
	return cfg
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// startShard runs a reconciler of its own, as a new controller process would (empty memory),
// for the Kustomizations labeled shardLabel=shard; stop ends it.
// With all, every request of that reconciler is logged there.
func startShard(t *testing.T, shard string, all ...*requestLog) (r *KustomizationReconciler, stop func()) {
	t.Helper()
	sel := labels.SelectorFromSet(labels.Set{shardLabel: shard})
	mgr, err := ctrl.NewManager(countingConfig(env.Config, all...), ctrl.Options{
		Scheme:     testScheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{ByObject: map[client.Object]cache.ByObject{&applyv1.Kustomization{}: {Label: sel}}},
		Controller: config.Controller{SkipNameValidation: ptrTo(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r = &KustomizationReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Config: mgr.GetConfig(), Mapper: mgr.GetRESTMapper(),
		Events: mgr.GetEventRecorder("apply-controller"), ControllerName: "apply-controller", Fetcher: &artifact.Fetcher{}, ConcurrentSSA: 4,
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.SetupWithManager(ctx, mgr, Options{Concurrent: 2}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)
	return r, stop
}

// cacheSees waits until r's metadata cache holds obj at its resourceVersion (or later), as a
// reconcile at the interval would find it.
func cacheSees(g *WithT, r *KustomizationReconciler, key objcache.Key, rv string) {
	g.Eventually(func() string {
		s, _, _ := r.owned.Get(context.Background(), key)
		return s.ResourceVersion
	}, timeout, 10*time.Millisecond).Should(Equal(rv))
}

func keyFor(ns, name, apiVersion, kind string) objcache.Key {
	return objcache.Key{GVK: schema.FromAPIVersionAndKind(apiVersion, kind), Namespace: ns, Name: name}
}

// The drift guarantee with drift from watches: a no-op reconcile reads and dry-runs nothing
// (at most the source and a status patch), a status-only change re-checks health without a
// dry-run, an edit by hand is put back at the next interval and at once on a reconcile request
// (however fresh: the objects are watched for a while after the request), a requested no-op
// reconcile makes one request (its status patch),
// and an edit made while the controller was stopped is put back by the first reconcile of the
// next one.
func TestKustomization_DriftFromWatches(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/web.yaml": idleDeployment, "deploy/cm.yaml": configMap("cm", "git")})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.Wait = true
		k.Labels = map[string]string{shardLabel: "drift"}
	})
	all := &requestLog{}
	r, stop := startShard(t, "drift", all)
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(k)}
	dep, cm := &appsv1.Deployment{}, &corev1.ConfigMap{}
	depKey, cmKey := keyFor(ns, "web", "apps/v1", "Deployment"), keyFor(ns, "cm", "v1", "ConfigMap")

	// Settle: the Deployment's controller writes its status (and an annotation) after the apply;
	// a reconcile that sees it judges health again (or dry-runs the Deployment). Once the
	// Deployment's controller is done, nothing is left to look at.
	g.Eventually(func(g Gomega) {
		g.Expect(exists(ns, "web", dep)).To(BeTrue())
		s, _, _ := r.owned.Get(context.Background(), depKey)
		g.Expect(s.ResourceVersion).To(Equal(dep.ResourceVersion))
		ctx, log := countRequests()
		_, err := r.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(log.matching("GET /apis/apps")).To(BeEmpty())
	}, timeout, 50*time.Millisecond).Should(Succeed())
	ctx, log := countRequests()
	_, err := r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("requests of a no-op reconcile: %v", log.all())
	g.Expect(len(log.all())).To(BeNumerically("<=", 2), "a no-op reconcile: %v", log.all())
	g.Expect(log.writesTo("/namespaces/" + ns + "/configmaps")).To(BeEmpty())
	g.Expect(log.writesTo("/deployments")).To(BeEmpty())
	g.Expect(log.matching("GET /apis/apps")).To(BeEmpty(), "no object is read")

	// A status-only change: health is judged again, from the watch (no read), nothing is
	// dry-run, and the record moves on.
	g.Expect(exists(ns, "web", dep)).To(BeTrue())
	dep.Status.Conditions = append(dep.Status.Conditions, appsv1.DeploymentCondition{Type: "Tested", Status: corev1.ConditionTrue, Reason: "Test"})
	g.Expect(k8s.Status().Update(context.Background(), dep)).To(Succeed())
	cacheSees(g, r, depKey, dep.ResourceVersion)
	ctx, log = countRequests()
	_, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(log.matching("GET /apis/apps")).To(BeEmpty(), "health is judged from the watch: %v", log.all())
	g.Expect(log.writesTo("/deployments/web")).To(BeEmpty(), "no dry-run of a status-only change: %v", log.all())
	g.Expect(r.records.get(req.NamespacedName)[depKey].ResourceVersion).To(Equal(dep.ResourceVersion))

	// An edit by hand: the next reconcile at the interval puts it back, and the object alone is
	// dry-run.
	g.Expect(exists(ns, "cm", cm)).To(BeTrue())
	cm.Data["key"] = "hand"
	g.Expect(k8s.Update(context.Background(), cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	cacheSees(g, r, cmKey, cm.ResourceVersion)
	ctx, log = countRequests()
	_, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(exists(ns, "cm", cm)).To(BeTrue())
	g.Expect(cm.Data["key"]).To(Equal("git"), "put back at the interval")
	t.Logf("requests of a reconcile after an edit: %v", log.all())
	g.Expect(log.writesTo("/deployments/web")).To(BeEmpty(), "the Deployment did not change: %v", log.all())

	// At once on a reconcile request, however fresh the edit: the request triages from the
	// cache, and an edit the cache has not seen yet wakes the Kustomization when it arrives.
	cm.Data["key"] = "hand again"
	g.Expect(k8s.Update(context.Background(), cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	before := len(all.all())
	handled(g, k, requestReconcile(g, k))
	putBack := func(why string) {
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(cm), cm)).To(Succeed())
			g.Expect(cm.Data["key"]).To(Equal("git"))
		}, 10*time.Second, 20*time.Millisecond).Should(Succeed(), why)
	}
	putBack("put back on the request, not at the interval (an hour)")
	reqs := all.all()[before:]
	webPath := "/apis/apps/v1/namespaces/" + ns + "/deployments/web"
	g.Expect(reqs).NotTo(ContainElement(HavePrefix("GET "+webPath)), "taken from the watch, not read")
	g.Expect(reqs).NotTo(ContainElement(HavePrefix("PATCH "+webPath)), "the Deployment did not change: no dry-run")

	// An edit the watch delivers after the request was handled, as one made a moment before
	// it can be: put back at once too.
	handled(g, k, requestReconcile(g, k))
	cm.Data["key"] = "just after"
	g.Expect(k8s.Update(context.Background(), cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	putBack("an edit that reached the cache after the request's look, put back within seconds")

	// A request with nothing changed: the status patch, no read and no write of an object.
	g.Eventually(func(g Gomega) {
		s, _, _ := r.owned.Get(context.Background(), cmKey)
		g.Expect(r.records.get(req.NamespacedName)[cmKey].ResourceVersion).To(Equal(s.ResourceVersion))
	}, timeout, 20*time.Millisecond).Should(Succeed(), "the put-back recorded")
	// The put-back's run may still be finishing (its health wait, a wake from its own apply):
	// one more request lets it end before the one measured.
	handled(g, k, requestReconcile(g, k))
	before = len(all.all())
	handled(g, k, requestReconcile(g, k))
	reqs = all.all()[before:]
	t.Logf("requests of a requested no-op reconcile: %v", reqs)
	g.Expect(reqs).To(ConsistOf("PATCH /apis/apply.plumb.dev/v1beta1/namespaces/"+ns+"/kustomizations/"+k.Name+"/status"),
		"the status patch alone: objects are taken from the watch")

	// An edit while the controller is down: the next one's first reconcile puts it back.
	stop()
	cm.Data["key"] = "while down"
	g.Expect(k8s.Update(context.Background(), cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	startShard(t, "drift")
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(cm), cm)).To(Succeed())
		g.Expect(cm.Data["key"]).To(Equal("git"))
	}, timeout, 50*time.Millisecond).Should(Succeed(), "put back by the first reconcile after a restart")
}

// A health wait wakes when the object it waits for changes: the run, parked after its first
// look, is not polled again (its next look is 30 s away, a guard against a missed change), and
// the object's becoming healthy ends it in far less.
func TestKustomization_HealthWaitWakesOnChange(t *testing.T) {
	g := NewWithT(t)
	installKind(g, "Beacon", "beacons")
	ns := newNamespace(t)
	beacon := "apiVersion: " + triggerGroup + "/v1\nkind: Beacon\nmetadata:\n  name: lit\nspec:\n  on: true\n"
	gr := source(t, ns, "beacon", "main@sha1:1", map[string]string{"deploy/beacon.yaml": beacon})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Labels = map[string]string{shardLabel: "wake"}
		k.Spec.Wait = true
		k.Spec.Timeout = &metav1.Duration{Duration: 2 * time.Minute}
		k.Spec.HealthCheckExprs = []applyv1.CustomHealthCheck{{APIVersion: triggerGroup + "/v1", Kind: "Beacon",
			Current: "has(status.state) && status.state == 'Lit'"}}
	})
	all := &requestLog{}
	r, _ := startShard(t, "wake", all)
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())

	// Parked, and once the kind's informer has synced, no longer polled: the reads of the
	// beacon stop growing.
	reads := "GET /apis/" + triggerGroup + "/v1/namespaces/" + ns + "/beacons/lit"
	g.Eventually(r.parked.len, timeout, 10*time.Millisecond).Should(Equal(1))
	g.Eventually(func(g Gomega) {
		n := len(all.matching(reads))
		g.Consistently(func() int { return len(all.matching(reads)) }, 3*time.Second, 100*time.Millisecond).Should(Equal(n))
	}, timeout).Should(Succeed(), "the parked run is not polled while nothing changes")
	lit := time.Now()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(triggerGroup + "/v1")
	u.SetKind("Beacon")
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "lit"}, u)).To(Succeed())
	u.Object["status"] = map[string]any{"state": "Lit"}
	g.Expect(k8s.Status().Update(context.Background(), u)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	g.Expect(time.Since(lit)).To(BeNumerically("<", 6*time.Second), "woken by the change, not by the 30 s guard")
	g.Expect(r.parked.len()).To(BeZero())
}

// Objects the metadata cache does not hold (not labeled by us) are created without a read when
// the cache says they are missing; one that is there all the same keeps its ssa: IfNotPresent
// meaning, and one with an immutable field is still recreated with force.
func TestKustomization_ObjectsNotInTheCacheAreStillRead(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	frozen := func(v string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "frozen", Namespace: ns}, Immutable: ptrTo(true), Data: map[string]string{"key": v}}
	}
	// The cache has synced ConfigMaps: it answers for the unlabeled ones that they are missing.
	g.Eventually(func() bool {
		_, _, synced := reconciler.owned.Get(context.Background(), keyFor(ns, "frozen", "v1", "ConfigMap"))
		return synced
	}, timeout, 20*time.Millisecond).Should(BeTrue())
	g.Expect(k8s.Create(context.Background(), frozen("by hand"))).To(Succeed())
	g.Expect(k8s.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep", Namespace: ns}, Data: map[string]string{"key": "by hand"}})).To(Succeed())
	keep := strings.Replace(configMap("keep", "git"), "metadata:\n", "metadata:\n  annotations:\n    apply.plumb.dev/ssa: IfNotPresent\n", 1)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{
		"deploy/frozen.yaml": configMap("frozen", "git") + "immutable: true\n",
		"deploy/keep.yaml":   keep,
		"deploy/new.yaml":    configMap("new", "git"),
	})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Spec.Force = true })
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")

	cm := &corev1.ConfigMap{}
	g.Expect(exists(ns, "frozen", cm)).To(BeTrue())
	g.Expect(cm.Data["key"]).To(Equal("git"), "recreated with force")
	g.Expect(exists(ns, "keep", cm)).To(BeTrue())
	g.Expect(cm.Data["key"]).To(Equal("by hand"), "IfNotPresent leaves an object that is there")
	g.Expect(exists(ns, "new", cm)).To(BeTrue())
}

// A health wait judges a workload from the watch: the Deployment's status, as its controller
// writes it, reaches the wait without a read of the Deployment.
func TestKustomization_HealthFromTheWatch(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/web.yaml": idleDeployment})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.Wait = true
		k.Labels = map[string]string{shardLabel: "health"}
	})
	all := &requestLog{}
	startShard(t, "health", all)
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	dep := &appsv1.Deployment{}
	g.Expect(exists(ns, "web", dep)).To(BeTrue())
	g.Expect(dep.Status.ObservedGeneration).To(Equal(dep.Generation), "judged Current on the status its controller wrote")
	// The one read allowed is before the apply, when the kind's informer has not synced yet.
	web := "/apis/apps/v1/namespaces/" + ns + "/deployments/web"
	applied := false
	for _, r := range all.all() {
		applied = applied || r == "PATCH "+web
		g.Expect(applied && r == "GET "+web).To(BeFalse(), "the Deployment is not read after the apply: %v", all.all())
	}
	g.Expect(applied).To(BeTrue())
}

// Objects the synced cache knows to be missing are created where the dry-run would be, once:
// neither read nor dry-run first. A run whose validation then fails changes no object that was
// there, and keeps what it created in the inventory, to prune.
func TestKustomization_NewObjectsAreCreatedWithoutADryRun(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	all := &requestLog{}
	r, _ := startShard(t, "create", all)
	shard := func(k *applyv1.Kustomization) { k.Labels = map[string]string{shardLabel: "create"} }
	// A first Kustomization meets the kinds: their informers sync.
	warm := newKustomization(ns, source(t, ns, "warm", "main@sha1:1", map[string]string{"deploy/cm.yaml": configMap("warm", "git")}).Name, shard)
	g.Expect(k8s.Create(context.Background(), warm)).To(Succeed())
	waitApplied(g, warm, "main@sha1:1")
	g.Eventually(func() bool {
		_, _, synced := r.owned.Get(context.Background(), keyFor(ns, "none", "v1", "ConfigMap"))
		return synced
	}, timeout, 10*time.Millisecond).Should(BeTrue())

	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/a.yaml": configMap("a", "git"), "deploy/b.yaml": configMap("b", "git")})
	k := newKustomization(ns, gr.Name, shard)
	before := len(all.all())
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	reqs := all.all()[before:]
	// The run that created them ends with its second status patch (the first records the
	// inventory before the apply); a reconcile after it (its source's status moved, say) may
	// dry-run them if the watch has not delivered the creates yet, as it should.
	statusPatch := "PATCH /apis/apply.plumb.dev/v1beta1/namespaces/" + ns + "/kustomizations/" + k.Name + "/status"
	for i, n := 0, 0; i < len(reqs); i++ {
		if reqs[i] == statusPatch {
			if n++; n == 2 {
				reqs = reqs[:i+1]
				break
			}
		}
	}
	for _, name := range []string{"a", "b"} {
		path := "/api/v1/namespaces/" + ns + "/configmaps/" + name
		var touched []string
		for _, r := range reqs {
			if strings.HasSuffix(r, path) || strings.HasSuffix(r, path+"?dryRun") {
				touched = append(touched, r)
			}
		}
		g.Expect(touched).To(Equal([]string{"PATCH " + path}), "created once, without a read or a dry-run: %v", reqs)
	}
	g.Expect(getK(g, k).Status.Inventory.IDs()).To(ConsistOf(ns+"_a__ConfigMap", ns+"_b__ConfigMap"))
	events := &corev1.EventList{}
	g.Eventually(func() string {
		g.Expect(k8s.List(context.Background(), events, client.InNamespace(ns))).To(Succeed())
		for _, e := range events.Items {
			if e.InvolvedObject.Name == k.Name && strings.Contains(e.Message, "ConfigMap/"+ns+"/a created") {
				return e.Message
			}
		}
		return ""
	}, timeout, 50*time.Millisecond).ShouldNot(BeEmpty(), "reported as created")

	// Revision 2 changes a, adds c, and adds a Service the API server refuses.
	setArtifact(t, gr, "main@sha1:2", map[string]string{
		"deploy/a.yaml":   configMap("a", "changed"),
		"deploy/b.yaml":   configMap("b", "git"),
		"deploy/c.yaml":   configMap("c", "git"),
		"deploy/bad.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n  - port: 0\n",
	})
	msg := waitNotReady(g, k, applyv1.ApplyFailedReason)
	g.Expect(msg).To(ContainSubstring("Service/" + ns + "/bad"))
	cm := &corev1.ConfigMap{}
	g.Expect(exists(ns, "a", cm)).To(BeTrue())
	g.Expect(cm.Data["key"]).To(Equal("git"), "an object that was there is not changed by a run that failed validation")
	if exists(ns, "c", cm) {
		t.Logf("c was created before the Service was refused")
		g.Expect(getK(g, k).Status.Inventory.IDs()).To(ContainElement(ns+"_c__ConfigMap"), "what was created is in the inventory, to prune")
	}
	g.Expect(exists(ns, "bad", &corev1.Service{})).To(BeFalse())
}

// A create in place of a dry-run that goes unanswered (the stage's context canceled when another
// of its applies failed, found under load by TestKustomization_NewObjectsAreCreatedWithoutADryRun)
// may have created the object: it is in the inventory all the same. One the API server refused
// is not.
func TestKustomization_UnansweredCreateIsInTheInventory(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var refuse bool
	c := interceptor.NewClient(env.Client, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if refuse {
				return apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, obj.GetName(), nil)
			}
			if err := c.Patch(ctx, obj, patch, opts...); err != nil {
				return err
			}
			return fmt.Errorf("reading the answer: %w", context.Canceled) // created, the answer lost
		},
	})
	apply := func(name string) error {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		u.SetNamespace(ns)
		u.SetName(name)
		o := newObserved()
		body, err := u.MarshalJSON()
		g.Expect(err).NotTo(HaveOccurred())
		err = o.createInsteadOfDryRun(context.Background(), c, u, client.RawPatch(types.ApplyPatchType, body), &client.PatchOptions{FieldManager: "apply-controller"})
		g.Expect(err).To(HaveOccurred())
		ids := o.madeInventory().IDs()
		if refuse {
			g.Expect(ids).To(BeEmpty(), "refused: nothing was created")
		} else {
			g.Expect(ids).To(ConsistOf(ns+"_"+name+"__ConfigMap"), "unanswered: it may be there")
		}
		return err
	}
	g.Expect(apply("lost")).To(MatchError(context.Canceled))
	g.Expect(exists(ns, "lost", &corev1.ConfigMap{})).To(BeTrue())
	refuse = true
	g.Expect(apierrors.IsInvalid(apply("refused"))).To(BeTrue())
}
