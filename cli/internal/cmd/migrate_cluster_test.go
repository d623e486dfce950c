package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/cli/internal/localdir"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kustomize"
	"github.com/plumb-dev/plumb/shared/testing/artifacttest"
)

var fluxCRDs sync.Once

// installFluxCRDs installs Flux's published CRDs (vendored in hack/compat/flux-crds) next to
// Plumb's, as in a cluster that runs Flux.
func installFluxCRDs(g Gomega) {
	fluxCRDs.Do(func() {
		_, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
			Paths: []string{filepath.Join("..", "..", "..", "hack", "compat", "flux-crds")}, ErrorIfPathMissing: true})
		g.Expect(err).NotTo(HaveOccurred())
	})
}

const fluxApps = `apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data:
  greeting: hello
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
`

// build builds a folder as apply-controller builds the Kustomization apps of ns.
func build(g Gomega, ns, dir string) []*unstructured.Unstructured {
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: ns},
		Spec: applyv1.KustomizationSpec{TargetNamespace: ns, Prune: true}}
	opts, err := kustomize.OptionsFor(context.Background(), k8s, ks, false)
	g.Expect(err).NotTo(HaveOccurred())
	tree, err := localdir.Load(dir)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := tree.Build(opts)
	g.Expect(err).NotTo(HaveOccurred())
	objs := make([]*unstructured.Unstructured, len(res.Objects))
	for i, o := range res.Objects {
		objs[i] = o.DeepCopy()
	}
	return objs
}

// applyAs applies objects as a controller applies them: fluxcd/pkg/ssa with the controller's
// field manager and owner labels, and the Kustomization's apply options.
func applyAs(g Gomega, manager, group, ns string, objs []*unstructured.Unstructured) *ssa.ChangeSet {
	return applyAsOwner(g, manager, group, "apps", ns, objs)
}

// applyAsOwner is applyAs for the Kustomization name of ns.
func applyAsOwner(g Gomega, manager, group, name, ns string, objs []*unstructured.Unstructured) *ssa.ChangeSet {
	rm, _, err := install.ManagerAs(env.Config, manager, group)
	g.Expect(err).NotTo(HaveOccurred())
	rm.SetOwnerLabels(objs, name, ns)
	ks := &applyv1.Kustomization{Spec: applyv1.KustomizationSpec{Prune: true}}
	cs, err := rm.ApplyAllStaged(context.Background(), objs, kustomize.ApplyOptions(ks))
	g.Expect(err).NotTo(HaveOccurred())
	return cs
}

// liveMeta reads what the takeover may change of the workload objects: resource version,
// labels and field managers.
type liveMeta struct {
	rv          string
	labels      map[string]string
	annotations map[string]string
	managers    []string
	data        any
}

func readLive(g Gomega, objs []*unstructured.Unstructured) map[string]liveMeta {
	out := map[string]liveMeta{}
	for _, o := range objs {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(o.GroupVersionKind())
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(o), u)).To(Succeed())
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
		out[o.GetKind()] = liveMeta{rv: u.GetResourceVersion(), labels: u.GetLabels(), annotations: u.GetAnnotations(), managers: managers, data: data}
	}
	return out
}

func fluxObject(g Gomega, apiVersion, kind, ns, name string, spec, status map[string]any) *unstructured.Unstructured {
	u := object(g, apiVersion, kind, ns, name, spec, status)
	u.SetFinalizers([]string{"finalizers.fluxcd.io"})
	g.Expect(k8s.Update(context.Background(), u)).To(Succeed())
	return u
}

func getObj(g Gomega, apiVersion, kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
	return u
}

// fluxGitRepository makes Flux's GitRepository name of ns with an artifact of dir at revision,
// served by artifacts.
func fluxGitRepository(g Gomega, artifacts *artifacttest.Server, ns, name, revision, dir string) {
	a := artifacts.Publish(revision, ".tar.gz", pack(g, dir))
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&a)
	g.Expect(err).NotTo(HaveOccurred())
	fluxObject(g, "source.toolkit.fluxcd.io/v1", "GitRepository", ns, name,
		map[string]any{"url": "https://example.invalid/" + name + ".git", "interval": "5m", "ref": map[string]any{"branch": "main"}},
		map[string]any{"artifact": status})
}

func TestMigrateClusterFromFlux(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	installFluxCRDs(g)
	ns := newNamespace(g)

	// The before state, as Flux makes it: a source, a Kustomization whose objects
	// kustomize-controller applied with its labels, its inventory in the status.
	dir := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(dir, "apps.yaml"), []byte(fluxApps), 0o600)).To(Succeed())
	objs := build(g, ns, dir)
	cs := applyAs(g, "kustomize-controller", "kustomize.toolkit.fluxcd.io", ns, build(g, ns, dir))
	var inventory []any
	for _, e := range cs.Entries {
		inventory = append(inventory, map[string]any{"id": e.ObjMetadata.Namespace + "_" + e.ObjMetadata.Name + "_" + e.ObjMetadata.GroupKind.Group + "_" + e.ObjMetadata.GroupKind.Kind, "v": e.GroupVersion})
	}
	g.Expect(inventory).To(HaveLen(3))
	artifacts := artifacttest.NewServer()
	defer artifacts.Close()
	fluxGitRepository(g, artifacts, ns, "repo", "main@sha1:0123456789abcdef0123456789abcdef01234567", dir)
	fluxObject(g, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", ns, "apps",
		map[string]any{"sourceRef": map[string]any{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "repo"},
			"path": "./", "interval": "10m", "prune": true, "targetNamespace": ns},
		map[string]any{"inventory": map[string]any{"entries": inventory}})
	// Suspended before the takeover: rollback leaves it suspended.
	fluxObject(g, "source.toolkit.fluxcd.io/v1", "HelmRepository", ns, "charts",
		map[string]any{"url": "https://example.invalid/charts", "interval": "1h", "suspend": true}, nil)
	// A field Plumb lacks: refused unless --drop-unsupported (a HelmRelease that asks for Helm
	// 4's server-side apply; Plumb releases with the Helm 3 SDK). Its release is deployed in
	// Helm's storage, so that the dry run has nothing to change for it either.
	fluxObject(g, "helm.toolkit.fluxcd.io/v2", "HelmRelease", ns, "ops",
		map[string]any{"interval": "10m", "install": map[string]any{"serverSideApply": true},
			"chart": map[string]any{"spec": map[string]any{"chart": "ops", "sourceRef": map[string]any{"kind": "HelmRepository", "name": "charts"}}}}, nil)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.ops.v1", Namespace: ns,
		Labels: map[string]string{"owner": "helm", "name": "ops", "status": "deployed", "version": "1"}}, Type: "helm.sh/release.v1"})).To(Succeed())

	// The dry run: Plumb's first apply would change nothing.
	code, out, errOut := plumb(ctx, "migrate", "cluster", "--from", "flux", "--dry-run")
	g.Expect(code).To(Equal(ExitOK), out+errOut)
	g.Expect(out).To(HavePrefix("► Kustomization/" + ns + "/apps\n"))
	g.Expect(out).To(ContainSubstring("  ConfigMap/" + ns + "/web unchanged\n"))
	g.Expect(out).To(ContainSubstring("  ServiceAccount/" + ns + "/web unchanged\n"))
	g.Expect(out).To(ContainSubstring("  Service/" + ns + "/web unchanged\n"))
	g.Expect(errOut).To(Equal("no changes: the takeover is clean"))
	// Someone edits an object by hand: the dry run shows what Plumb would set back.
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cm)).To(Succeed())
	cm.Data["greeting"] = "edited"
	g.Expect(k8s.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "flux", "--dry-run", "--artifacts-from", artifacts.URL)
	g.Expect(code).To(Equal(ExitFailure), out)
	g.Expect(out).To(ContainSubstring("  ConfigMap/" + ns + "/web changed\n"))
	g.Expect(out).To(ContainSubstring("-  greeting: edited\n+  greeting: hello\n"))
	g.Expect(out).To(ContainSubstring("  Service/" + ns + "/web unchanged\n"))
	applyAs(g, "kustomize-controller", "kustomize.toolkit.fluxcd.io", ns, build(g, ns, dir)) // as Flux sets it back

	before := readLive(g, objs)
	g.Expect(before["ConfigMap"].labels).To(HaveKeyWithValue("kustomize.toolkit.fluxcd.io/name", "apps"))

	code, out, errOut = plumb(ctx, "migrate", "cluster", "--from", "flux")
	g.Expect(code).To(Equal(ExitFailure), out)
	g.Expect(errOut).To(ContainSubstring("some objects were not migrated"))
	g.Expect(out).To(ContainSubstring("✗ HelmRelease/" + ns + "/ops: the Plumb HelmRelease would lack field spec.install.serverSideApply"))
	g.Expect(out).To(ContainSubstring("✔ Kustomization/" + ns + "/apps: suspended; Plumb twin created; 3 applied objects handed over to apply-controller"))
	g.Expect(kindsSuspendedT(getObj(g, "helm.toolkit.fluxcd.io/v2", "HelmRelease", ns, "ops"))).To(BeFalse(), "an object that cannot be taken over stays Flux's, running")
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ops"}, get0("helm.plumb.dev/v1beta1", "HelmRelease"))
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no twin: %v", err)

	// Flux objects suspended, with what they were.
	fks := getObj(g, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", ns, "apps")
	g.Expect(kindsSuspendedT(fks)).To(BeTrue())
	g.Expect(fks.GetAnnotations()).To(HaveKeyWithValue("plumb.dev/migrated-suspend", "was-running"))
	g.Expect(getObj(g, "source.toolkit.fluxcd.io/v1", "HelmRepository", ns, "charts").GetAnnotations()).To(HaveKeyWithValue("plumb.dev/migrated-suspend", "was-suspended"))

	// Twins with the live spec, references moved to Plumb's groups, Flux's inventory.
	tks := getObj(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "apps")
	g.Expect(tks.GetLabels()).To(HaveKeyWithValue("plumb.dev/migrated-from", "flux"))
	spec, _, _ := unstructured.NestedMap(tks.Object, "spec")
	g.Expect(spec).To(HaveKeyWithValue("sourceRef", map[string]any{"apiVersion": "source.plumb.dev/v1beta1", "kind": "GitRepository", "name": "repo"}))
	g.Expect(spec).To(HaveKeyWithValue("path", "./"))
	g.Expect(spec).To(HaveKeyWithValue("prune", true))
	g.Expect(spec).NotTo(HaveKey("suspend"), "the twin runs as the Flux Kustomization did")
	entries, _, _ := unstructured.NestedSlice(tks.Object, "status", "inventory", "entries")
	g.Expect(entries).To(ConsistOf(inventory...))
	g.Expect(kindsSuspendedT(getObj(g, "source.plumb.dev/v1beta1", "HelmRepository", ns, "charts"))).To(BeTrue(), "suspended as Flux's was")
	grSpec, _, _ := unstructured.NestedMap(getObj(g, "source.plumb.dev/v1beta1", "GitRepository", ns, "repo").Object, "spec")
	g.Expect(grSpec).To(HaveKeyWithValue("url", "https://example.invalid/repo.git"))

	// Every applied object: Plumb's labels and field manager, nothing else changed.
	after := readLive(g, objs)
	for kind, b := range before {
		a := after[kind]
		g.Expect(a.data).To(Equal(b.data), kind)
		g.Expect(a.labels).To(HaveKeyWithValue("apply.plumb.dev/name", "apps"), kind)
		g.Expect(a.labels).To(HaveKeyWithValue("apply.plumb.dev/namespace", ns), kind)
		g.Expect(a.labels).NotTo(HaveKey("kustomize.toolkit.fluxcd.io/name"), kind)
		g.Expect(a.managers).To(ContainElement("apply-controller/Apply"), kind)
		g.Expect(a.managers).NotTo(ContainElement(HavePrefix("kustomize-controller")), kind)
		g.Expect(a.managers).NotTo(ContainElement(HavePrefix("plumb-migrate")), "%s: the takeover leaves no field manager of its own", kind)
	}

	// apply-controller's first apply of the same build is a true no-op.
	applied := applyAs(g, "apply-controller", "apply.plumb.dev", ns, build(g, ns, dir))
	for _, e := range applied.Entries {
		g.Expect(e.Action).To(Equal(ssa.UnchangedAction), e.Subject)
	}
	for kind, a := range readLive(g, objs) {
		g.Expect(a.rv).To(Equal(after[kind].rv), "%s unchanged by Plumb's first apply", kind)
	}

	// Again, dropping what Plumb lacks: the rest is left as it is.
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "flux", "--drop-unsupported")
	g.Expect(code).To(Equal(ExitOK), out)
	g.Expect(out).To(ContainSubstring("✔ HelmRelease/" + ns + "/ops: suspended; Plumb twin created without spec.install.serverSideApply"))
	g.Expect(out).To(ContainSubstring("✔ Kustomization/" + ns + "/apps: suspended; Plumb twin already there; 0 applied objects handed over"))
	for kind, a := range readLive(g, objs) {
		g.Expect(a.rv).To(Equal(after[kind].rv), "%s unchanged by a second run", kind)
	}

	// Finish refuses while a twin is not Ready, and changes nothing.
	code, out, errOut = plumb(ctx, "migrate", "cluster", "--from", "flux", "--finish", "--flux-namespace", ns)
	g.Expect(code).To(Equal(ExitFailure), out)
	g.Expect(errOut).To(ContainSubstring("not finished"))
	g.Expect(out).To(ContainSubstring("✗ Kustomization/" + ns + "/apps: Plumb twin not Ready (Unknown)"))
	g.Expect(kindsSuspendedT(getObj(g, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", ns, "apps"))).To(BeTrue())

	// Rollback: the twins go without pruning, Flux gets its objects back and runs again.
	tks = getObj(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "apps")
	tks.SetFinalizers([]string{applyv1.Finalizer}) // as apply-controller would have added
	g.Expect(k8s.Update(ctx, tks)).To(Succeed())
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "flux", "--rollback")
	g.Expect(code).To(Equal(ExitOK), out)
	g.Expect(out).To(ContainSubstring("✔ Kustomization/" + ns + "/apps: resumed"))
	g.Expect(out).To(ContainSubstring("✔ HelmRepository/" + ns + "/charts: left suspended"))
	for _, kind := range []string{"Kustomization", "GitRepository", "HelmRepository"} {
		group := map[string]string{"Kustomization": "apply.plumb.dev", "GitRepository": "source.plumb.dev", "HelmRepository": "source.plumb.dev"}[kind]
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "apps"}, get0(group+"/v1beta1", kind))
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s twin gone: %v", kind, err)
	}
	rolled := readLive(g, objs)
	for kind, b := range before {
		a := rolled[kind]
		g.Expect(a.labels).To(Equal(b.labels), kind)
		g.Expect(a.managers).To(Equal(b.managers), kind)
		g.Expect(a.data).To(Equal(b.data), kind)
	}
	fks = getObj(g, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", ns, "apps")
	g.Expect(fks.Object["spec"]).NotTo(HaveKey("suspend"))
	g.Expect(fks.GetAnnotations()).NotTo(HaveKey("plumb.dev/migrated-suspend"))
	g.Expect(kindsSuspendedT(getObj(g, "source.toolkit.fluxcd.io/v1", "HelmRepository", ns, "charts"))).To(BeTrue())
	// Flux's next apply after a rollback changes nothing either.
	for _, e := range applyAs(g, "kustomize-controller", "kustomize.toolkit.fluxcd.io", ns, build(g, ns, dir)).Entries {
		g.Expect(e.Action).To(Equal(ssa.UnchangedAction), e.Subject)
	}

	// Take over again, the twins become Ready, then finish: Flux's controllers and objects go,
	// what they applied stays.
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "flux", "--drop-unsupported")
	g.Expect(code).To(Equal(ExitOK), out)
	for _, tw := range []*unstructured.Unstructured{
		getObj(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "apps"),
		getObj(g, "source.plumb.dev/v1beta1", "GitRepository", ns, "repo"),
		getObj(g, "helm.plumb.dev/v1beta1", "HelmRelease", ns, "ops"),
	} {
		tw.Object["status"] = map[string]any{"conditions": ready("True", "Succeeded", "ok")}
		g.Expect(k8s.Status().Update(ctx, tw)).To(Succeed())
	}
	fluxController := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kustomize-controller", Namespace: ns,
		Labels: map[string]string{"app.kubernetes.io/part-of": "flux"}}}
	g.Expect(k8s.Create(ctx, fluxController)).To(Succeed())
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "flux", "--finish", "--flux-namespace", ns)
	g.Expect(code).To(Equal(ExitOK), out)
	g.Expect(out).To(ContainSubstring("✔ ServiceAccount/" + ns + "/kustomize-controller: deleted (Flux's controllers)"))
	g.Expect(out).To(ContainSubstring("✔ Kustomization/" + ns + "/apps: Flux object deleted; what it applied stays"))
	for _, o := range []*unstructured.Unstructured{get0("kustomize.toolkit.fluxcd.io/v1", "Kustomization"), get0("source.toolkit.fluxcd.io/v1", "GitRepository")} {
		g.Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: map[string]string{"Kustomization": "apps", "GitRepository": "repo"}[o.GetKind()]}, o))
		}).Should(BeTrue(), o.GetKind())
	}
	for kind, a := range readLive(g, objs) {
		g.Expect(a.data).To(Equal(before[kind].data), "%s stays", kind)
	}
	getObj(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "apps")
}

// pack makes an artifact of a folder, as a source-controller does.
func pack(g Gomega, dir string) []byte {
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	entries, err := os.ReadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(w.File(e.Name(), false, int64(len(data)), bytes.NewReader(data))).To(Succeed())
	}
	g.Expect(w.Close()).To(Succeed())
	return buf.Bytes()
}

func get0(apiVersion, kind string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	return u
}

func kindsSuspendedT(u *unstructured.Unstructured) bool {
	v, _, _ := unstructured.NestedBool(u.Object, "spec", "suspend")
	return v
}
