//go:build chaos

package chaos

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// gone waits until obj is not found.
func gone(t *testing.T, obj client.Object, within time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		err := bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		return apierrors.IsNotFound(err)
	}, within, poll).Should(BeTrue(), "%s %s is deleted", obj.GetObjectKind().GroupVersionKind().Kind, client.ObjectKeyFromObject(obj))
}

func configMap(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  value: \"" + value + "\"\n"
}

// A GitRepository deleted while a Kustomization applies it: the Kustomization says so and keeps
// (prunes nothing of) what it applied; created again, the source is followed again.
func TestSourceDeletedInUse(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	tr := record(t, "source deleted while in use", "apply-controller", "Ready=False SourceNotReady; nothing pruned; the source's artifacts deleted; followed again once it is back")
	const ns = "source-deleted"
	newNamespace(t, ns)
	git := startGit(t, "source-deleted")
	repo, _, err := git.NewRepo("app", map[string]string{"apps/app/a.yaml": configMap("a", "1")})
	g.Expect(err).NotTo(HaveOccurred())
	newSource := func() *sourcev1.GitRepository {
		return followMain(git, ns, "app")
	}
	gr := newSource()
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path: "apps/app", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			RetryInterval: &metav1.Duration{Duration: 2 * time.Second}}}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	g.Expect(c.Create(ctx, ks)).To(Succeed())
	ready(t, ks, nil)

	g.Expect(c.Delete(ctx, gr)).To(Succeed())
	gone(t, gr, timeout)
	_, err = os.Stat(filepath.Join(storageDir, "gitrepository", ns, "app"))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "the finalizer deleted the artifacts: %v", err)
	request(g, ks)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.GetReason(ks, meta.ReadyCondition)).To(Equal(applyv1.SourceNotReadyReason))
	}, timeout, poll).Should(Succeed())
	t.Logf("Ready=False: %s", conditions.GetMessage(ks, meta.ReadyCondition))
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a"}, &corev1.ConfigMap{})).To(Succeed(), "nothing is pruned")
	g.Expect(inventory(ks)).To(HaveLen(1))

	commit, err := repo.Commit("b too", map[string]string{"apps/app/b.yaml": configMap("b", "1")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Create(ctx, newSource())).To(Succeed())
	since := time.Now()
	ready(t, ks, func(g Gomega) { g.Expect(ks.Status.LastAppliedRevision).To(Equal("main@sha1:" + commit)) })
	tr.recovered(since)
	g.Expect(inventory(ks)).To(HaveLen(2))
}

// A namespace deleted with a GitRepository, a Kustomization and what it applied in it: no
// finalizer holds the deletion, and the artifacts go with it. Then a Kustomization's target
// namespace deleted under it: the apply says which namespace is missing, and succeeds again once
// it is back.
func TestNamespaceDeleted(t *testing.T) {
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	git := startGit(t, "namespace-deleted")
	_, _, err := git.NewRepo("app", map[string]string{"apps/app/a.yaml": configMap("a", "1")})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	setUp := func(g Gomega, ns, target string) *applyv1.Kustomization {
		gr := followMain(git, ns, "app")
		ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
			Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
				Path: "apps/app", TargetNamespace: target, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
				RetryInterval: &metav1.Duration{Duration: 2 * time.Second}}}
		g.Expect(c.Create(ctx, gr)).To(Succeed())
		g.Expect(c.Create(ctx, ks)).To(Succeed())
		return ks
	}

	t.Run("its own namespace", func(t *testing.T) {
		tr := record(t, "namespace deleted with its sources, Kustomizations and objects", "source-controller, apply-controller", "the namespace goes (no finalizer stuck); artifacts deleted")
		g := NewWithT(t)
		const ns = "doomed"
		newNamespace(t, ns)
		ks := setUp(g, ns, ns)
		ready(t, ks, nil)
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		g.Expect(c.Delete(ctx, nsObj)).To(Succeed())
		since := time.Now()
		gone(t, nsObj, timeout)
		tr.recovered(since)
		_, err := os.Stat(filepath.Join(storageDir, "gitrepository", ns))
		g.Expect(os.IsNotExist(err) || emptyDir(filepath.Join(storageDir, "gitrepository", ns))).To(BeTrue(), "the artifacts went with the namespace")
	})

	t.Run("the target namespace", func(t *testing.T) {
		tr := record(t, "target namespace deleted under a Kustomization", "apply-controller", "Ready=False naming the namespace; applied again once it is back")
		g := NewWithT(t)
		const ns, target = "keeper", "target"
		newNamespace(t, ns)
		newNamespace(t, target)
		ks := setUp(g, ns, target)
		ready(t, ks, nil)
		targetNs := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: target}}
		g.Expect(c.Delete(ctx, targetNs)).To(Succeed())
		gone(t, targetNs, timeout)
		request(g, ks)
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
			g.Expect(conditions.IsFalse(ks, meta.ReadyCondition)).To(BeTrue())
			g.Expect(conditions.GetMessage(ks, meta.ReadyCondition)).To(ContainSubstring(target))
		}, timeout, poll).Should(Succeed())
		t.Logf("Ready=False (%s): %s", conditions.GetReason(ks, meta.ReadyCondition), conditions.GetMessage(ks, meta.ReadyCondition))
		newNamespace(t, target)
		since := time.Now()
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: target, Name: "a"}, &corev1.ConfigMap{})).To(Succeed())
		}, timeout, poll).Should(Succeed())
		ready(t, ks, nil)
		tr.recovered(since)
	})
}

func emptyDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) == 0
}

// A CRD removed while one of its objects is in a Kustomization's inventory: the Kustomization
// says the kind is missing; a revision without that object prunes nothing else and is Ready;
// and deleting the Kustomization is not held by the kind that is gone.
func TestCRDRemovedInInventory(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	tr := record(t, "CRD removed while its objects are in an inventory", "apply-controller", "Ready=False naming the kind; a revision without it applied and pruned exactly; deletion not held")
	const ns = "crd-removed"
	newNamespace(t, ns)
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "widgets.chaos.plumb.dev"},
		"spec": map[string]any{
			"group": "chaos.plumb.dev", "scope": "Namespaced",
			"names": map[string]any{"kind": "Widget", "listKind": "WidgetList", "plural": "widgets", "singular": "widget"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	g.Expect(c.Create(ctx, crd)).To(Succeed())
	widgets := &unstructured.UnstructuredList{}
	widgets.SetAPIVersion("chaos.plumb.dev/v1")
	widgets.SetKind("WidgetList")
	g.Eventually(func() error { return c.List(ctx, widgets, client.InNamespace(ns)) }, timeout, poll).Should(Succeed(), "the CRD is served")

	git := startGit(t, "crd-removed")
	widget := "apiVersion: chaos.plumb.dev/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 1\n"
	repo, _, err := git.NewRepo("app", map[string]string{"apps/app/a.yaml": configMap("a", "1"), "apps/app/widget.yaml": widget})
	g.Expect(err).NotTo(HaveOccurred())
	gr := followMain(git, ns, "app")
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path: "apps/app", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			RetryInterval: &metav1.Duration{Duration: 2 * time.Second}}}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	g.Expect(c.Create(ctx, ks)).To(Succeed())
	ready(t, ks, func(g Gomega) { g.Expect(inventory(ks)).To(HaveLen(2)) })

	g.Expect(c.Delete(ctx, crd)).To(Succeed())
	gone(t, crd, timeout)
	request(g, ks)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.IsFalse(ks, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetMessage(ks, meta.ReadyCondition)).To(ContainSubstring("Widget"))
	}, timeout, poll).Should(Succeed())
	t.Logf("Ready=False (%s): %s", conditions.GetReason(ks, meta.ReadyCondition), conditions.GetMessage(ks, meta.ReadyCondition))
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a"}, &corev1.ConfigMap{})).To(Succeed(), "nothing else is pruned")

	commit, err := repo.Commit("no widget", map[string]string{"apps/app/widget.yaml": "", "apps/app/b.yaml": configMap("b", "1")})
	g.Expect(err).NotTo(HaveOccurred())
	since := time.Now()
	request(g, gr)
	ready(t, ks, func(g Gomega) { g.Expect(ks.Status.LastAppliedRevision).To(Equal("main@sha1:" + commit)) })
	tr.recovered(since)
	g.Expect(inventory(ks)).To(Equal([]string{ns + "_a__ConfigMap", ns + "_b__ConfigMap"}))

	// With the kind gone, deleting the Kustomization prunes what it can and is not held.
	_, err = repo.Commit("the widget again", map[string]string{"apps/app/widget.yaml": widget})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Delete(ctx, ks)).To(Succeed())
	gone(t, ks, timeout)
	g.Eventually(func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a"}, &corev1.ConfigMap{}))
	}, timeout, poll).Should(BeTrue(), "deletion pruned the ConfigMaps")
}
