//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// A source that is not Plumb's: hack/examples/artifact-producer packs a ConfigMap into an
// artifact of its own kind, and the unchanged apply-controller applies it through sourceRef,
// follows a change of the data, and keeps the last good artifact when the producer fails.
func TestThirdPartyArtifactProducer(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)

	root, err := testenv.WorkspaceRoot()
	g.Expect(err).NotTo(HaveOccurred())
	crd := &unstructured.Unstructured{}
	raw, err := os.ReadFile(filepath.Join(root, "hack", "examples", "artifact-producer", "crd.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(yaml.Unmarshal(raw, &crd.Object)).To(Succeed())
	g.Expect(c.Create(ctx, crd)).To(Succeed())

	bin := filepath.Join(bed.Dir, "artifact-producer")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./hack/examples/artifact-producer")
	build.Dir = root
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	addr, err := local.FreeAddr()
	g.Expect(err).NotTo(HaveOccurred())
	producer, err := local.Start(bin, bed.Kubeconfig, filepath.Join(bed.Dir, "artifact-producer.log"), "--addr", addr)
	g.Expect(err).NotTo(HaveOccurred())
	defer producer.Stop()
	defer func() {
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(bed.Dir, "artifact-producer.log"))
			t.Logf("--- artifact-producer\n%s", data)
		}
	}()

	const ns = "third-party"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	manifest := func(greeting string) map[string]string {
		return map[string]string{"app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  greeting: " + greeting + "\n"}
	}
	data := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bundle", Namespace: ns}, Data: manifest("hello")}
	g.Expect(c.Create(ctx, data)).To(Succeed())
	src := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "demo.example.com/v1alpha1", "kind": "ConfigMapArtifact",
		"metadata": map[string]any{"name": "bundle", "namespace": ns},
		"spec":     map[string]any{"configMapRef": map[string]any{"name": "bundle"}},
	}}
	// The CRD may take a moment to be served.
	g.Eventually(func() error { return c.Create(ctx, src) }, timeout, 200*time.Millisecond).Should(Succeed())

	ks := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "greeting", Namespace: ns},
		Spec: applyv1.KustomizationSpec{
			SourceRef:       applyv1.CrossNamespaceSourceReference{APIVersion: "demo.example.com/v1alpha1", Kind: "ConfigMapArtifact", Name: "bundle"},
			Path:            "./",
			TargetNamespace: ns,
			Prune:           true,
			Interval:        metav1.Duration{Duration: time.Hour},
			RetryInterval:   &metav1.Duration{Duration: 2 * time.Second},
		},
	}
	g.Expect(c.Create(ctx, ks)).To(Succeed())

	// revision is the producer's current artifact revision once it is Ready.
	revision := func() string {
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), src)).To(Succeed())
			g.Expect(readyAtGeneration(src)).To(BeTrue())
		}, timeout, 200*time.Millisecond).Should(Succeed())
		rev, _, _ := unstructured.NestedString(src.Object, "status", "artifact", "revision")
		return rev
	}
	applied := func(rev, greeting string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
			g.Expect(conditions.IsReady(ks)).To(BeTrue(), "Ready: %s", conditions.GetMessage(ks, meta.ReadyCondition))
			g.Expect(ks.Status.LastAppliedRevision).To(Equal(rev))
			cm := &corev1.ConfigMap{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "greeting"}, cm)).To(Succeed())
			g.Expect(cm.Data["greeting"]).To(Equal(greeting))
		}, timeout, 200*time.Millisecond).Should(Succeed())
	}
	first := revision()
	g.Expect(first).To(MatchRegexp(`^sha256:[0-9a-f]{64}$`))
	applied(first, "hello")

	// New data: a new artifact, applied at once (apply-controller watches the producer's kind).
	data.Data = manifest("bonjour")
	g.Expect(c.Update(ctx, data)).To(Succeed())
	var second string
	g.Eventually(func() string { second = revision(); return second }, timeout, 200*time.Millisecond).ShouldNot(Equal(first))
	applied(second, "bonjour")

	// The ConfigMap goes: the producer turns not Ready and keeps naming its last artifact; the
	// Kustomization waits on it, naming it, and the cluster keeps what was applied.
	g.Expect(c.Delete(ctx, data)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), src)).To(Succeed())
		g.Expect(readyAtGeneration(src)).To(BeFalse())
	}, timeout, 200*time.Millisecond).Should(Succeed())
	rev, _, _ := unstructured.NestedString(src.Object, "status", "artifact", "revision")
	g.Expect(rev).To(Equal(second))
	request(g, ks)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.IsFalse(ks, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetMessage(ks, meta.ReadyCondition)).To(ContainSubstring("ConfigMapArtifact " + ns + "/bundle is not ready or not found"))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	cm := &corev1.ConfigMap{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "greeting"}, cm)).To(Succeed())
	g.Expect(cm.Data["greeting"]).To(Equal("bonjour"))
	g.Expect(ks.Status.LastAppliedRevision).To(Equal(second))
}

// readyAtGeneration reads Ready=True at the object's generation from an unstructured object.
func readyAtGeneration(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			return m["status"] == "True" && og == u.GetGeneration()
		}
	}
	return false
}
