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
	"helm.sh/helm/v3/pkg/action"
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
	_ = helm
	_ = repo
	_ = action.NewHistory
	_ = meta.ReadyCondition
	_ = conditions.IsReady
	_ = apierrors.IsNotFound
	_ = applyv1.GroupVersion
	_ = helmv1.GroupVersion
	_ = sourcev1.GroupVersion
	_ = time.Second

	out, ok := plumb("migrate", "cluster", "--from", "flux", "--dry-run", "--artifacts-from", artifacts.URL)
	g.Expect(ok).To(BeTrue(), out)
	t.Log(out)
}
