//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/artifacttest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// shopOverlay is a kustomize overlay of the app of e2e_test.go: the base as it is, the
// ConfigMap's greeting patched by the overlay.
func shopOverlay(greeting string) map[string]string {
	files := app("hello", true)
	files["apps/web/kustomization.yaml"] = "resources:\n- deployment.yaml\n- config.yaml\n- service.yaml\n"
	files["overlays/prod/kustomization.yaml"] = "resources:\n- ../../apps/web\npatches:\n- path: greeting.yaml\n"
	files["overlays/prod/greeting.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: \"" + greeting + "\"\n"
	return files
}

// liveState is what a takeover may change of an applied object, and what it must not.
type liveState struct {
	rv       string
	labels   map[string]string
	managers []string
	data     map[string]any
}

func readState(g Gomega, u *unstructured.Unstructured) liveState {
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(u.GroupVersionKind())
	g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(u), cur)).To(Succeed())
	return stateOf(cur)
}

func stateOf(u *unstructured.Unstructured) liveState {
	var managers []string
	for _, e := range u.GetManagedFields() {
		managers = append(managers, e.Manager+"/"+string(e.Operation))
	}
	slices.Sort(managers)
	data := map[string]any{}
	for k, v := range u.Object {
		if k != "metadata" && k != "status" {
			data[k] = v
		}
	}
	return liveState{rv: u.GetResourceVersion(), labels: u.GetLabels(), managers: managers, data: data}
}

// changeLog records every change of the ConfigMaps, Services and Deployments of a namespace,
// in order, by Kind/name.
type changeLog struct {
	mu      sync.Mutex
	changes map[string][]*unstructured.Unstructured
}

func watchChanges(g *WithT, ctx context.Context, ns string) *changeLog {
	wc, err := client.NewWithWatch(bed.Env.Config, client.Options{Scheme: bed.Env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	l := &changeLog{changes: map[string][]*unstructured.Unstructured{}}
	for _, gvk := range []string{"v1/ConfigMapList", "v1/ServiceList", "apps/v1/DeploymentList"} {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion(filepath.Dir(gvk))
		list.SetKind(filepath.Base(gvk))
		w, err := wc.Watch(ctx, list, client.InNamespace(ns))
		g.Expect(err).NotTo(HaveOccurred())
		go func() {
			for ev := range w.ResultChan() {
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok || ev.Type != watch.Modified {
					continue
				}
				l.mu.Lock()
				key := u.GetKind() + "/" + u.GetName()
				l.changes[key] = append(l.changes[key], u)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// handedOver is the resourceVersion an object got from the takeover's hand-over: its first
// change that carries Plumb's owner labels and no field manager of the takeover's own.
func (l *changeLog) handedOver(key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range l.changes[key] {
		if u.GetLabels()["apply.plumb.dev/name"] == "" {
			continue
		}
		if !slices.ContainsFunc(u.GetManagedFields(), func(e metav1.ManagedFieldsEntry) bool { return e.Manager == "plumb-migrate" }) {
			return u.GetResourceVersion()
		}
	}
	return ""
}

// plumbCLI builds the plumb command and returns a function that runs it against the control
// plane, with its combined output and whether it exited 0.
func plumbCLI(g *WithT) func(args ...string) (string, bool) {
	root, err := testenv.WorkspaceRoot()
	g.Expect(err).NotTo(HaveOccurred())
	bin := filepath.Join(bed.Dir, "plumb")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./cli/cmd/plumb")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	g.Expect(build.Run()).To(Succeed())
	return func(args ...string) (string, bool) {
		out, err := exec.Command(bin, append([]string{"--kubeconfig", bed.Kubeconfig}, args...)...).CombinedOutput()
		return string(out), err == nil
	}
}

// A cluster run by Flux taken over by Plumb's real controllers, and given back: the before
// state is made as Flux makes it (Flux's CRDs and objects with Flux's status, a kustomize
// overlay applied as kustomize-controller applies it, a Helm release installed and stored as
// Flux's helm-controller does). `plumb migrate cluster --from flux --dry-run` finds nothing to
// change; the takeover suspends Flux, and Plumb's first reconcile of each twin changes nothing
// (resourceVersions as the hand-over left them, the Helm release adopted with no new revision).
// --rollback gives everything back to Flux as it was, pruning and uninstalling nothing. Taken
// over again, Plumb corrects a drift and applies a new commit, and --finish removes Flux's
// controllers and objects, leaving the workloads.
func TestMigrateClusterFromFlux(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	plumb := plumbCLI(g)
	installFluxCRDs(g)
	const ns, fluxNS = "migrate", "migrate-flux-system"
	for _, n := range []string{ns, fluxNS} {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}})).To(Succeed())
	}

	// Sources on loopback: the overlay in Git, the chart in a Helm repository.
	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git-migrate"))
	g.Expect(err).NotTo(HaveOccurred())
	defer git.Stop()
	files := shopOverlay("hello from Flux")
	repo, commit, err := git.NewRepo("shop", files)
	g.Expect(err).NotTo(HaveOccurred())
	charts := t.TempDir()
	chartSrv := httptest.NewServer(http.FileServer(http.Dir(charts)))
	defer chartSrv.Close()
	publishChart(g, charts, chartSrv.URL, "1.0.0")
	artifacts := artifacttest.NewServer()
	defer artifacts.Close()

	// Flux's controllers, as its install makes them (scaled to 0: they never run here).
	fluxLabels := map[string]string{"app.kubernetes.io/part-of": "flux"}
	g.Expect(c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kustomize-controller", Namespace: fluxNS, Labels: fluxLabels}})).To(Succeed())
	zero := int32(0)
	g.Expect(c.Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "kustomize-controller", Namespace: fluxNS, Labels: fluxLabels},
		Spec: appsv1.DeploymentSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "kustomize-controller"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "kustomize-controller"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "ghcr.io/fluxcd/kustomize-controller:v1.7.0"}}}}}})).To(Succeed())

	// The Kustomization's objects, applied as kustomize-controller applies them.
	revision := "main@sha1:" + commit
	data := packFiles(g, files)
	a := artifacts.Publish(revision, ".tar.gz", data)
	a.URL = "http://source-controller." + fluxNS + ".svc.cluster.local." + a.Path // as Flux's source-controller advertises it
	applied := buildAs(g, data, "overlays/prod", ns)
	g.Expect(applied).To(HaveLen(3))
	inventory := applyAsFlux(g, "shop", ns, buildAs(g, data, "overlays/prod", ns))
	fluxObject(g, "source.toolkit.fluxcd.io/v1", "GitRepository", ns, "shop",
		map[string]any{"url": git.URL("shop"), "interval": "1m", "ref": map[string]any{"branch": "main"}},
		map[string]any{"artifact": artifactStatus(g, &a)})
	fluxObject(g, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", ns, "shop",
		map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "shop"}, "path": "./overlays/prod",
			"interval": "10m", "retryInterval": "2s", "prune": true, "wait": true, "targetNamespace": ns},
		map[string]any{"inventory": map[string]any{"entries": inventory}, "lastAppliedRevision": revision, "lastAttemptedRevision": revision})

	// The Helm release, installed and stored as Flux's helm-controller does it.
	values := map[string]any{"greeting": "from Flux"}
	helm := helmConfig(g, ns)
	rls := installAsFlux(g, helm, filepath.Join(charts, "web-1.0.0.tgz"), "greeter", ns, values)
	index := artifacts.Publish("sha256:0000000000000000000000000000000000000000000000000000000000000001", ".yaml", []byte("apiVersion: v1\nentries: {}\n"))
	fluxObject(g, "source.toolkit.fluxcd.io/v1", "HelmRepository", ns, "charts",
		map[string]any{"url": chartSrv.URL, "interval": "1h"}, map[string]any{"artifact": artifactStatus(g, &index)})
	fluxObject(g, "source.toolkit.fluxcd.io/v1", "HelmChart", ns, ns+"-greeter",
		map[string]any{"chart": "web", "version": "1.x", "interval": "1h", "reconcileStrategy": "ChartVersion",
			"sourceRef": map[string]any{"kind": "HelmRepository", "name": "charts"}}, nil)
	fluxObject(g, "helm.toolkit.fluxcd.io/v2", "HelmRelease", ns, "greeter",
		map[string]any{"interval": "10m", "values": values, "chart": map[string]any{"spec": map[string]any{
			"chart": "web", "version": "1.x", "sourceRef": map[string]any{"kind": "HelmRepository", "name": "charts"}}}},
		map[string]any{"history": []any{releaseSnapshot(rls)}, "helmChart": ns + "/" + ns + "-greeter",
			"lastAttemptedRevision": "1.0.0", "lastAttemptedReleaseAction": "install", "storageNamespace": ns})

	// Before: what the takeover must leave as it is. The Deployment is settled first, so that
	// kube-controller-manager writes nothing to it while the controllers work.
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, d)).To(Succeed())
		g.Expect(d.Annotations).To(HaveKey("deployment.kubernetes.io/revision"))
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	before := map[string]liveState{}
	for _, u := range applied {
		before[u.GetKind()] = readState(g, u)
		g.Expect(before[u.GetKind()].labels).To(HaveKeyWithValue("kustomize.toolkit.fluxcd.io/name", "shop"), u.GetKind())
	}
	greeter := &corev1.ConfigMap{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "greeter"}, greeter)).To(Succeed())
	g.Expect(greeter.Labels).To(HaveKeyWithValue("helm.toolkit.fluxcd.io/name", "greeter"))
	g.Expect(greeter.Data).To(HaveKeyWithValue("greeting", "from Flux"))
	g.Expect(helmHistory(g, helm, "greeter")).To(HaveLen(1))

	// The dry run: Plumb's first apply would change nothing, and the release would be adopted.
	out, ok := plumb("migrate", "cluster", "--from", "flux", "--dry-run", "--artifacts-from", artifacts.URL)
	g.Expect(ok).To(BeTrue(), out)
	for _, u := range applied {
		g.Expect(out).To(ContainSubstring("  %s/%s/%s unchanged\n", u.GetKind(), ns, u.GetName()))
	}
	g.Expect(out).To(ContainSubstring("► HelmRelease/" + ns + "/greeter: release " + ns + "/greeter revision 1 deployed"))
	g.Expect(out).To(ContainSubstring("no changes: the takeover is clean"))

	// The takeover, watched: every change of the applied objects from here on is recorded.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	changes := watchChanges(g, watchCtx, ns)
	out, ok = plumb("migrate", "cluster", "--from", "flux")
	g.Expect(ok).To(BeTrue(), out)
	g.Expect(out).To(ContainSubstring("✔ Kustomization/" + ns + "/shop: suspended; Plumb twin created; 3 applied objects handed over to apply-controller"))
	g.Expect(out).To(ContainSubstring("✔ HelmRelease/" + ns + "/greeter: suspended; Plumb twin created"))
	twinsReady(t, ns, revision)
	for _, f := range fluxObjects {
		u := fluxGet(g, ns, f)
		g.Expect(u.Object["spec"]).To(HaveKeyWithValue("suspend", true), f.kind)
		g.Expect(u.GetAnnotations()).To(HaveKeyWithValue("plumb.dev/migrated-suspend", "was-running"), f.kind)
	}

	// apply-controller's first reconcile of the twin changed nothing: each object is at the
	// resourceVersion the hand-over gave it, which changed only labels and field managers.
	for _, u := range applied {
		key := u.GetKind() + "/" + u.GetName()
		var handed string
		g.Eventually(func() string { handed = changes.handedOver(key); return handed }, timeout, 50*time.Millisecond).ShouldNot(BeEmpty(), key)
		after := readState(g, u)
		g.Expect(after.rv).To(Equal(handed), "%s: changed after the hand-over, by Plumb's first apply", key)
		g.Expect(after.data).To(Equal(before[u.GetKind()].data), key)
		g.Expect(after.labels).To(HaveKeyWithValue("apply.plumb.dev/name", "shop"), key)
		g.Expect(after.labels).NotTo(HaveKey("kustomize.toolkit.fluxcd.io/name"), key)
		g.Expect(after.managers).To(ContainElement("apply-controller/Apply"), key)
		g.Expect(after.managers).NotTo(ContainElement(HavePrefix("kustomize-controller")), key)
	}
	// helm-controller adopted Flux's release: no new revision, nothing applied.
	hr := &helmv1.HelmRelease{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "greeter"}, hr)).To(Succeed())
	g.Expect(conditions.GetReason(hr, helmv1.ReleasedCondition)).To(Equal(helmv1.AdoptSucceededReason), conditions.GetMessage(hr, helmv1.ReleasedCondition))
	g.Expect(hr.Status.History).To(HaveLen(1))
	g.Expect(hr.Status.History[0].Version).To(Equal(1))
	g.Expect(helmHistory(g, helm, "greeter")).To(HaveLen(1), "no new revision")
	after := &corev1.ConfigMap{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "greeter"}, after)).To(Succeed())
	g.Expect(after.ResourceVersion).To(Equal(greeter.ResourceVersion), "the release's objects are left as they are")
	stopWatching()

	// Rollback: the twins go, pruning and uninstalling nothing; Flux gets its objects back as
	// they were and runs again.
	out, ok = plumb("migrate", "cluster", "--from", "flux", "--rollback")
	g.Expect(ok).To(BeTrue(), out)
	g.Expect(out).To(ContainSubstring("✔ Kustomization/" + ns + "/shop: resumed"))
	g.Eventually(func(g Gomega) {
		for _, tw := range twins(ns) {
			err := c.Get(ctx, client.ObjectKeyFromObject(tw), tw)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T twin gone: %v", tw, err)
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())
	for _, f := range fluxObjects {
		u := fluxGet(g, ns, f)
		g.Expect(u.Object["spec"]).NotTo(HaveKey("suspend"), f.kind)
		g.Expect(u.GetAnnotations()).NotTo(HaveKey("plumb.dev/migrated-suspend"), f.kind)
	}
	for _, u := range applied {
		rolled, b := readState(g, u), before[u.GetKind()]
		g.Expect(rolled.labels).To(Equal(b.labels), u.GetKind())
		g.Expect(rolled.managers).To(Equal(b.managers), u.GetKind())
		g.Expect(rolled.data).To(Equal(b.data), u.GetKind())
	}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "greeter"}, after)).To(Succeed())
	hist := helmHistory(g, helm, "greeter")
	g.Expect(hist).To(HaveLen(1), "not uninstalled, no new revision")
	g.Expect(hist[0].Info.Status.String()).To(Equal("deployed"))

	// Taken over again, for good: Plumb corrects a drift and applies a new commit.
	out, ok = plumb("migrate", "cluster", "--from", "flux")
	g.Expect(ok).To(BeTrue(), out)
	twinsReady(t, ns, revision)
	greeting := func() string {
		cm := &corev1.ConfigMap{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cm)).To(Succeed())
		return cm.Data["greeting"]
	}
	cm := &corev1.ConfigMap{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cm)).To(Succeed())
	cm.Data["greeting"] = "edited by hand"
	g.Expect(c.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	request(g, &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}})
	g.Eventually(greeting, timeout, 100*time.Millisecond).Should(Equal("hello from Flux"))
	commit, err = repo.Commit("greet from Plumb", map[string]string{"overlays/prod/greeting.yaml": shopOverlay("hello from Plumb")["overlays/prod/greeting.yaml"]})
	g.Expect(err).NotTo(HaveOccurred())
	request(g, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}})
	twinsReady(t, ns, "main@sha1:"+commit)
	g.Expect(greeting()).To(Equal("hello from Plumb"))
	g.Expect(helmHistory(g, helm, "greeter")).To(HaveLen(1))

	// Finish: Flux's controllers and objects go, what they applied and installed stays.
	out, ok = plumb("migrate", "cluster", "--from", "flux", "--finish", "--flux-namespace", fluxNS)
	g.Expect(ok).To(BeTrue(), out)
	g.Expect(out).To(ContainSubstring("✔ Deployment/" + fluxNS + "/kustomize-controller: deleted (Flux's controllers)"))
	g.Expect(out).To(ContainSubstring("✔ Kustomization/" + ns + "/shop: Flux object deleted; what it applied stays"))
	g.Eventually(func(g Gomega) {
		for _, f := range append(fluxObjects, fluxKind{"source.toolkit.fluxcd.io/v1", "HelmChart", ns + "-greeter"}) {
			u := &unstructured.Unstructured{}
			u.SetAPIVersion(f.apiVersion)
			u.SetKind(f.kind)
			err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: f.name}, u)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Flux %s gone: %v", f.kind, err)
		}
		err := c.Get(ctx, client.ObjectKey{Namespace: fluxNS, Name: "kustomize-controller"}, &appsv1.Deployment{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Flux's controller gone: %v", err)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	for _, u := range applied {
		g.Expect(readState(g, u).labels).To(HaveKeyWithValue("apply.plumb.dev/name", "shop"), u.GetKind())
	}
	g.Expect(greeting()).To(Equal("hello from Plumb"))
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "greeter"}, after)).To(Succeed())
	g.Expect(helmHistory(g, helm, "greeter")).To(HaveLen(1))
	twinsReady(t, ns, "main@sha1:"+commit)
}

// fluxKind names a Flux object of the test.
type fluxKind struct{ apiVersion, kind, name string }

// fluxObjects are the Flux objects the takeover suspends and gives a twin.
var fluxObjects = []fluxKind{
	{"source.toolkit.fluxcd.io/v1", "GitRepository", "shop"},
	{"kustomize.toolkit.fluxcd.io/v1", "Kustomization", "shop"},
	{"source.toolkit.fluxcd.io/v1", "HelmRepository", "charts"},
	{"helm.toolkit.fluxcd.io/v2", "HelmRelease", "greeter"},
}

func fluxGet(g *WithT, ns string, f fluxKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(f.apiVersion)
	u.SetKind(f.kind)
	g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: f.name}, u)).To(Succeed(), f.kind)
	return u
}

// twins are the Plumb twins of fluxObjects.
func twins(ns string) []client.Object {
	return []client.Object{
		&sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}},
		&applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}},
		&sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "charts"}},
		&helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "greeter"}},
	}
}

// twinsReady waits until every twin is Ready at its generation, under the real controllers,
// and the Kustomization applied revision.
func twinsReady(t *testing.T, ns, revision string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		for _, tw := range twins(ns) {
			g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(tw), tw)).To(Succeed())
			obj := tw.(conditions.Getter)
			g.Expect(conditions.IsReady(obj)).To(BeTrue(), "%T %s: %s", tw, conditions.GetReason(obj, meta.ReadyCondition), conditions.GetMessage(obj, meta.ReadyCondition))
			g.Expect(conditions.Get(obj, meta.ReadyCondition).ObservedGeneration).To(Equal(tw.GetGeneration()), "%T", tw)
			if ks, ok := tw.(*applyv1.Kustomization); ok {
				g.Expect(ks.Status.LastAppliedRevision).To(Equal(revision))
			}
		}
	}, timeout, 200*time.Millisecond).Should(Succeed())
}
