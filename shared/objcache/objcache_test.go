package objcache

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if env, err = testenv.Start(testenv.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	return m.Run()
}

const owner = "apply.plumb.dev/name"

var cmGVK = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

// applyConfigMap applies a ConfigMap as apply-controller would: server-side, with its labels.
func applyConfigMap(g Gomega, ns, name string, owned bool, value string) {
	cm := corev1ac.ConfigMap(name, ns).WithData(map[string]string{"key": value})
	if owned {
		cm.WithLabels(map[string]string{owner: "app-" + name, "apply.plumb.dev/namespace": ns})
	}
	g.Expect(env.Client.Apply(context.Background(), cm, client.FieldOwner("apply-controller"), client.ForceOwnership)).To(Succeed())
}

// newCache starts a cache of the objects labelled owner, digesting the entries of manager when
// it is given.
func newCache(g Gomega, ctx context.Context, manager ...string) *Cache {
	hc, err := apiutilHTTPClient()
	g.Expect(err).NotTo(HaveOccurred())
	mapper, err := apiutil.NewDynamicRESTMapper(env.Config, hc)
	g.Expect(err).NotTo(HaveOccurred())
	c, err := New(env.Config, clientgoscheme.Scheme, mapper, Options{Selector: owner, Manager: strings.Join(manager, "")})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = c.Start(ctx) }()
	return c
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(g Gomega, ctx context.Context) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "objcache-"}}
	g.Expect(env.Client.Create(ctx, ns)).To(Succeed())
	return ns
}

// synced waits until the cache answers for the kind.
func synced(g Gomega, c *Cache, k Key) {
	g.Eventually(func() bool { _, _, ok := c.Get(context.Background(), k); return ok }, 30*time.Second, 10*time.Millisecond).Should(BeTrue())
}

// The cache holds the owned objects only, tells an edit from a status-only change by their
// snapshots, and wakes a waiter at an object's change. It also reports its memory per 1,000
// objects (go test -v).
func TestCache(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(g, ctx)
	const n = 2000
	for i := range n {
		applyConfigMap(g, ns.Name, fmt.Sprintf("cm-%04d", i), true, "v")
	}
	applyConfigMap(g, ns.Name, "not-ours", false, "v")

	// The cache's fixed costs (clients, REST mappings, a first informer) are paid before the
	// heap is measured.
	c := newCache(g, ctx)
	synced(g, c, Key{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, Namespace: ns.Name, Name: "none"})
	before := heapInUse()
	first := Key{GVK: cmGVK, Namespace: ns.Name, Name: "cm-0000"}
	synced(g, c, first)
	after := heapInUse()
	perThousand := float64(after-before) / (1 << 20) / (n / 1000.0)
	t.Logf("metadata cache: %.2f MiB per 1,000 ConfigMaps (heap in use, %d objects)", perThousand, n)
	g.Expect(perThousand).To(BeNumerically("<", 4), "metadata only: a few hundred bytes per object")

	s, found, ok := c.Get(ctx, first)
	g.Expect(ok && found).To(BeTrue())
	_, found, ok = c.Get(ctx, Key{GVK: cmGVK, Namespace: ns.Name, Name: "not-ours"})
	g.Expect(ok).To(BeTrue())
	g.Expect(found).To(BeFalse(), "an object without the owner label is not cached")

	// A change wakes the waiter, and shows as an edit (ConfigMaps have no generation).
	ch, stop := c.Changed(ctx, []Key{first, {GVK: cmGVK, Namespace: ns.Name, Name: "cm-0001"}})
	defer stop()
	applyConfigMap(g, ns.Name, "cm-0000", true, "edited")
	g.Eventually(ch, 30*time.Second).Should(BeClosed())
	now, _, _ := c.Get(ctx, first)
	g.Expect(Compare(s, now, GenerationTracked(cmGVK.GroupKind()))).To(Equal(Edited))
	g.Expect(Compare(now, now, false)).To(Equal(Same))
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func TestCompare(t *testing.T) {
	base := Snapshot{ResourceVersion: "10", Generation: 3, Meta: "m", Epoch: 1}
	with := func(f func(*Snapshot)) Snapshot { s := base; f(&s); return s }
	ownBase := with(func(s *Snapshot) { s.Own = true })
	own := func(f func(*Snapshot)) Snapshot { s := ownBase; f(&s); return s }
	for _, tc := range []struct {
		name     string
		was, now Snapshot
		tracked  bool
		want     Change
	}{
		{"same resourceVersion", base, base, true, Same},
		{"status only", base, with(func(s *Snapshot) { s.ResourceVersion = "11" }), true, StatusOnly},
		{"status only, kind without generation rules", base, with(func(s *Snapshot) { s.ResourceVersion = "11" }), false, Edited},
		{"spec edited", base, with(func(s *Snapshot) { s.ResourceVersion = "11"; s.Generation = 4 }), true, Edited},
		{"metadata edited", base, with(func(s *Snapshot) { s.ResourceVersion = "11"; s.Meta = "n" }), true, Edited},
		{"a watch failed since", base, with(func(s *Snapshot) { s.Epoch = 2 }), true, Edited},
		// Snapshots of the manager's own entry tell a status-only change of any kind.
		{"own entry: others' change, kind without generation rules", ownBase, own(func(s *Snapshot) { s.ResourceVersion = "11" }), false, StatusOnly},
		{"own entry: edited", ownBase, own(func(s *Snapshot) { s.ResourceVersion = "11"; s.Meta = "n" }), false, Edited},
		{"own entry: spec moved", ownBase, own(func(s *Snapshot) { s.ResourceVersion = "11"; s.Generation = 4 }), true, Edited},
		{"own entry: a watch failed since", ownBase, own(func(s *Snapshot) { s.Epoch = 2 }), false, Edited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Compare(tc.was, tc.now, tc.tracked); got != tc.want {
				t.Errorf("Compare = %v, want %v", got, tc.want)
			}
		})
	}
	if Compare(Snapshot{}, base, true) != Edited {
		t.Error("no record must mean a dry-run")
	}
}

func TestGenerationTracked(t *testing.T) {
	for gk, want := range map[schema.GroupKind]bool{
		{Group: "apps", Kind: "Deployment"}:                     true,
		{Group: "", Kind: "Service"}:                            false,
		{Group: "", Kind: "ConfigMap"}:                          false,
		{Group: "networking.k8s.io", Kind: "Ingress"}:           false,
		{Group: "helm.plumb.dev", Kind: "HelmRelease"}:          true,
		{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}: false,
	} {
		if got := GenerationTracked(gk); got != want {
			t.Errorf("GenerationTracked(%v) = %v, want %v", gk, got, want)
		}
	}
}

func apiutilHTTPClient() (*http.Client, error) { return rest.HTTPClientFor(env.Config) }

// A workload kind is kept with its status and the fields of spec kstatus reads, and nothing
// else of its spec; a core kind's status is not kept.
func TestObjectKeepsStatusOfWorkloads(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := "workloads"
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{owner: "app"},
			Annotations: map[string]string{"big": strings.Repeat("x", 4096)}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
	g.Expect(env.Client.Create(ctx, dep)).To(Succeed())
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 2, ReadyReplicas: 1}
	g.Expect(env.Client.Status().Update(ctx, dep)).To(Succeed())
	applyConfigMap(g, ns, "cm", true, "v")

	c := newCache(g, ctx)
	depKey := Key{GVK: appsv1.SchemeGroupVersion.WithKind("Deployment"), Namespace: ns, Name: "web"}
	var u *unstructured.Unstructured
	g.Eventually(func() bool {
		var ok bool
		u, ok = c.Object(ctx, depKey)
		return ok
	}, 30*time.Second, 20*time.Millisecond).Should(BeTrue())
	g.Expect(u.GetResourceVersion()).To(Equal(dep.ResourceVersion))
	ready, _, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
	g.Expect(ready).To(Equal(int64(1)))
	replicas, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
	g.Expect(replicas).To(Equal(int64(2)))
	_, found, _ := unstructured.NestedMap(u.Object, "spec", "template")
	g.Expect(found).To(BeFalse(), "the pod template is not kept")
	g.Expect(u.GetAnnotations()).To(HaveLen(1), "the annotations are a digest")
	s, found, synced := c.Get(ctx, depKey)
	g.Expect(found && synced).To(BeTrue())
	g.Expect(s.ResourceVersion).To(Equal(dep.ResourceVersion))

	cmKey := Key{GVK: cmGVK, Namespace: ns, Name: "cm"}
	g.Eventually(func() bool { _, found, _ := c.Get(ctx, cmKey); return found }, 30*time.Second, 20*time.Millisecond).Should(BeTrue())
	_, ok := c.Object(ctx, cmKey)
	g.Expect(ok).To(BeFalse(), "a ConfigMap has no status to keep")
}

// A selector of one value (helm-controller's) caches the objects with that value only; one that
// selects every object, or does not parse, is refused.
func TestSelectorOfOneValue(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(g, ctx)
	const managedBy = "app.kubernetes.io/managed-by"
	for name, value := range map[string]string{"helm": "Helm", "other": "kubectl"} {
		cm := corev1ac.ConfigMap(name, ns.Name).WithLabels(map[string]string{managedBy: value})
		g.Expect(env.Client.Apply(ctx, cm, client.FieldOwner("test"), client.ForceOwnership)).To(Succeed())
	}

	hc, err := apiutilHTTPClient()
	g.Expect(err).NotTo(HaveOccurred())
	mapper, err := apiutil.NewDynamicRESTMapper(env.Config, hc)
	g.Expect(err).NotTo(HaveOccurred())
	for _, bad := range []string{"", "a=b=c"} {
		_, err := New(env.Config, clientgoscheme.Scheme, mapper, Options{Selector: bad})
		g.Expect(err).To(HaveOccurred(), "selector %q", bad)
	}
	c, err := New(env.Config, clientgoscheme.Scheme, mapper, Options{Selector: managedBy + "=Helm"})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = c.Start(ctx) }()
	helm := Key{GVK: cmGVK, Namespace: ns.Name, Name: "helm"}
	synced(g, c, helm)
	_, found, _ := c.Get(ctx, helm)
	g.Expect(found).To(BeTrue())
	_, found, ok := c.Get(ctx, Key{GVK: cmGVK, Namespace: ns.Name, Name: "other"})
	g.Expect(ok).To(BeTrue())
	g.Expect(found).To(BeFalse(), "another value of the label is not cached")
}

// With a Manager, a snapshot digests that manager's entry: writes by others that leave what it
// applied alone (kube-controller-manager's annotations, a label of their own) are not edits,
// while a write that changes or removes an applied value, or takes it over with another apply,
// is. The cache's slim copy and a full read digest alike.
func TestOwnEntryTellsEditsOfAppliedFields(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(g, ctx)
	c := newCache(g, ctx, "apply-controller")

	apply := func(name string) *corev1.ConfigMap {
		cm := corev1ac.ConfigMap(name, ns.Name).WithData(map[string]string{"key": "git"}).
			WithLabels(map[string]string{owner: "app", "tier": "web"})
		g.Expect(env.Client.Apply(ctx, cm, client.FieldOwner("apply-controller"), client.ForceOwnership)).To(Succeed())
		out := &corev1.ConfigMap{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, out)).To(Succeed())
		return out
	}
	key := func(name string) Key { return Key{GVK: cmGVK, Namespace: ns.Name, Name: name} }
	synced(g, c, key("none"))
	// cached waits until the cache holds the object at rv and returns its snapshot there.
	cached := func(name, rv string) Snapshot {
		var s Snapshot
		g.Eventually(func() string { s, _, _ = c.Get(ctx, key(name)); return s.ResourceVersion }, 30*time.Second, 10*time.Millisecond).Should(Equal(rv))
		return s
	}
	update := func(cm *corev1.ConfigMap, edit func(*corev1.ConfigMap)) *corev1.ConfigMap {
		edit(cm)
		g.Expect(env.Client.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
		return cm
	}
	for _, tc := range []struct {
		name string
		edit func(cm *corev1.ConfigMap) *corev1.ConfigMap
		want Change
	}{
		{"an annotation of another writer", func(cm *corev1.ConfigMap) *corev1.ConfigMap {
			return update(cm, func(cm *corev1.ConfigMap) { cm.Annotations = map[string]string{"revision": "2"} })
		}, StatusOnly},
		{"a data key of another writer", func(cm *corev1.ConfigMap) *corev1.ConfigMap {
			return update(cm, func(cm *corev1.ConfigMap) { cm.Data["theirs"] = "x" })
		}, StatusOnly},
		{"an applied value changed", func(cm *corev1.ConfigMap) *corev1.ConfigMap {
			return update(cm, func(cm *corev1.ConfigMap) { cm.Data["key"] = "hand" })
		}, Edited},
		{"an applied label removed", func(cm *corev1.ConfigMap) *corev1.ConfigMap {
			return update(cm, func(cm *corev1.ConfigMap) { delete(cm.Labels, "tier") })
		}, Edited},
		{"an applied value taken over by another apply", func(cm *corev1.ConfigMap) *corev1.ConfigMap {
			ac := corev1ac.ConfigMap(cm.Name, cm.Namespace).WithData(map[string]string{"key": "theirs"})
			g.Expect(env.Client.Apply(ctx, ac, client.FieldOwner("other"), client.ForceOwnership)).To(Succeed())
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm)).To(Succeed())
			return cm
		}, Edited},
		{"recreated by someone else", func(cm *corev1.ConfigMap) *corev1.ConfigMap {
			g.Expect(env.Client.Delete(ctx, cm)).To(Succeed())
			fresh := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cm.Name, Namespace: cm.Namespace, Labels: cm.Labels, ManagedFields: cm.ManagedFields}, Data: cm.Data}
			g.Expect(env.Client.Create(ctx, fresh)).To(Succeed())
			return fresh
		}, Edited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			cm := apply(name)
			was := cached(name, cm.ResourceVersion)
			g.Expect(was.Own).To(BeTrue())
			g.Expect(c.SnapshotOf(cm, c.Epoch())).To(Equal(was), "a full read digests as the cache does")
			cm = tc.edit(cm)
			now := cached(name, cm.ResourceVersion)
			g.Expect(c.SnapshotOf(cm, c.Epoch())).To(Equal(now))
			if got := Compare(was, now, false); got != tc.want {
				t.Errorf("Compare = %v, want %v", got, tc.want)
			}
		})
	}
}
