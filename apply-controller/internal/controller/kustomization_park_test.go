package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

// lampKind is a custom resource whose health is an expression: Current once status.state is
// Lit, which only the test sets.
const lampKind = "Lamp"

func installLamps(g *WithT) {
	lamps := &unstructured.UnstructuredList{}
	lamps.SetAPIVersion(triggerGroup + "/v1")
	lamps.SetKind(lampKind + "List")
	if err := k8s.List(context.Background(), lamps); err != nil {
		installKind(g, lampKind, "lamps")
	}
}

func lamp(name string) string {
	return "apiVersion: " + triggerGroup + "/v1\nkind: " + lampKind + "\nmetadata:\n  name: " + name + "\nspec:\n  on: true\n"
}

// waitsForLamps makes a Kustomization wait for the lamps it applies.
func waitsForLamps(shard string, timeout time.Duration) func(*applyv1.Kustomization) {
	return func(k *applyv1.Kustomization) {
		k.Labels = map[string]string{shardLabel: shard}
		k.Spec.Wait = true
		k.Spec.Timeout = &metav1.Duration{Duration: timeout}
		k.Spec.HealthCheckExprs = []applyv1.CustomHealthCheck{{APIVersion: triggerGroup + "/v1", Kind: lampKind,
			Current: "has(status.state) && status.state == 'Lit'"}}
	}
}

func light(g *WithT, ns, name string) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(triggerGroup + "/v1")
	u.SetKind(lampKind)
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
	u.Object["status"] = map[string]any{"state": "Lit"}
	g.Expect(k8s.Status().Update(context.Background(), u)).To(Succeed())
}

// A health wait does not hold a worker: with two workers, two Kustomizations waiting for their
// objects leave room for a third to be applied and turn Ready; each waiting one turns Ready
// when its object does, and has written no status meanwhile.
func TestKustomization_HealthWaitGivesTheWorkerBack(t *testing.T) {
	g := NewWithT(t)
	installLamps(g)
	ns := newNamespace(t)
	r, _ := startShard(t, "park") // two workers
	var waiting []*applyv1.Kustomization
	for _, name := range []string{"a", "b"} {
		gr := source(t, ns, "lamp-"+name, "main@sha1:1", map[string]string{"deploy/lamp.yaml": lamp("lamp-" + name)})
		k := newKustomization(ns, gr.Name, waitsForLamps("park", 5*time.Minute), func(k *applyv1.Kustomization) { k.Spec.Prune = false })
		g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
		waiting = append(waiting, k)
	}
	g.Eventually(r.parked.len, timeout, 10*time.Millisecond).Should(Equal(2), "both runs wait without a worker")

	gr := source(t, ns, "plain", "main@sha1:1", map[string]string{"deploy/cm.yaml": configMap("cm", "git")})
	plain := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Labels = map[string]string{shardLabel: "park"} })
	g.Expect(k8s.Create(context.Background(), plain)).To(Succeed())
	waitApplied(g, plain, "main@sha1:1")
	for _, k := range waiting {
		getK(g, k)
		g.Expect(conditions.Has(k, meta.ReadyCondition)).To(BeFalse(), "a parked run writes no status")
	}

	light(g, ns, "lamp-a")
	waitApplied(g, waiting[0], "main@sha1:1")
	g.Expect(conditions.IsTrue(waiting[0], HealthyCondition)).To(BeTrue())
	g.Expect(conditions.GetMessage(waiting[0], HealthyCondition)).To(Equal("1 objects healthy"))
	g.Expect(getK(g, waiting[1]).Status.LastAppliedRevision).To(BeEmpty(), "the other still waits")
	g.Expect(waiting[0].Status.History).To(HaveLen(1), "one run, parked and resumed")
	light(g, ns, "lamp-b")
	waitApplied(g, waiting[1], "main@sha1:1")
	g.Eventually(r.parked.len, timeout, 10*time.Millisecond).Should(BeZero())
}

// A parked run fails at its timeout as a blocking wait would, naming what it waited for.
func TestKustomization_ParkedWaitTimesOut(t *testing.T) {
	g := NewWithT(t)
	installLamps(g)
	ns := newNamespace(t)
	startShard(t, "park-timeout")
	gr := source(t, ns, "lamp", "main@sha1:1", map[string]string{"deploy/lamp.yaml": lamp("dark")})
	k := newKustomization(ns, gr.Name, waitsForLamps("park-timeout", 2*time.Second))
	start := time.Now()
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.HealthCheckFailedReason)
	g.Expect(time.Since(start)).To(BeNumerically("<", 20*time.Second))
	g.Expect(msg).To(ContainSubstring("timed out waiting for 1 object(s): " + lampKind + "/" + ns + "/dark"))
	g.Expect(conditions.IsFalse(k, HealthyCondition)).To(BeTrue())
	g.Expect(k.Status.Inventory.Entries).To(HaveLen(1), "what was applied is in the inventory")
}

// A parked run gives way to what changes it: a reconcile request starts a new run (which waits
// again, and is handled when the object turns healthy), and a new revision is applied at once.
func TestKustomization_ParkedRunGivesWay(t *testing.T) {
	g := NewWithT(t)
	installLamps(g)
	ns := newNamespace(t)
	r, _ := startShard(t, "park-way")
	gr := source(t, ns, "lamp", "main@sha1:1", map[string]string{"deploy/lamp.yaml": lamp("dark")})
	k := newKustomization(ns, gr.Name, waitsForLamps("park-way", 5*time.Minute))
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	g.Eventually(r.parked.len, timeout, 10*time.Millisecond).Should(Equal(1))

	v := requestReconcile(g, k)
	g.Consistently(func() string { return getK(g, k).Status.LastHandledReconcileAt }, 2*time.Second, 100*time.Millisecond).
		ShouldNot(Equal(v), "not handled while the object is not healthy")
	g.Expect(r.parked.len()).To(Equal(1))

	setArtifact(t, gr, "main@sha1:2", map[string]string{"deploy/cm.yaml": configMap("cm", "git")})
	waitApplied(g, k, "main@sha1:2")
	g.Expect(strings.Join(k.Status.Inventory.IDs(), ",")).To(ContainSubstring("_cm__ConfigMap"), "the new revision's objects")
	g.Expect(k.Status.LastHandledReconcileAt).To(Equal(v))
	g.Eventually(r.parked.len, timeout, 10*time.Millisecond).Should(BeZero())
}
