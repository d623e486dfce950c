package controller

import (
	"errors"
	"testing"
	"time"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/status"
)

// TestOutcome checks conditions and observedGeneration for each outcome, and how kstatus
// (kubectl wait, Flux-style tooling) reads them.
func TestOutcome(t *testing.T) {
	cases := []struct {
		name        string
		setup       func(*applyv1.Kustomization)
		err         error
		reconciling bool
		stalled     bool
		observed    int64
		kstatus     kstatus.Status
	}{
		{"applied", func(k *applyv1.Kustomization) { markReconciling(k, "x"); markReady(k, "applied") }, nil, false, false, 3, kstatus.CurrentStatus},
		{"waiting for a dependency", func(k *applyv1.Kustomization) {
			conditions.MarkFalse(k, meta.ReadyCondition, applyv1.DependencyNotReadyReason, "dep")
		},
			&status.WaitError{Msg: "dependency not ready"}, true, false, 2, kstatus.InProgressStatus},
		{"apply failed, retrying", func(k *applyv1.Kustomization) {
			conditions.MarkFalse(k, meta.ReadyCondition, applyv1.ApplyFailedReason, "refused")
		},
			errors.New("refused"), true, false, 2, kstatus.InProgressStatus},
		{"stalled", func(k *applyv1.Kustomization) {
			conditions.MarkStalled(k, applyv1.AccessDeniedReason, "no")
			conditions.MarkFalse(k, meta.ReadyCondition, applyv1.AccessDeniedReason, "no")
		}, reconcile.TerminalError(errors.New("no")), false, true, 3, kstatus.FailedStatus},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			k := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: "n", Generation: 3}}
			k.Status.ObservedGeneration = 2
			tc.setup(k)
			status.Outcome(k, status.Fields{ObservedGeneration: &k.Status.ObservedGeneration}, tc.err)
			g.Expect(conditions.IsReconciling(k)).To(Equal(tc.reconciling))
			g.Expect(conditions.IsStalled(k)).To(Equal(tc.stalled))
			g.Expect(k.Status.ObservedGeneration).To(Equal(tc.observed))
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(k)
			g.Expect(err).NotTo(HaveOccurred())
			res, err := kstatus.Compute(&unstructured.Unstructured{Object: u})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Status).To(Equal(tc.kstatus), res.Message)
		})
	}
}

func TestRecordRun(t *testing.T) {
	g := NewWithT(t)
	k := &applyv1.Kustomization{}
	now := time.Now()
	add := func(rev, digest, reason string) {
		conditions.MarkFalse(k, meta.ReadyCondition, reason, "x")
		if reason == applyv1.SucceededReason {
			markReady(k, "x")
		}
		recordRun(k, &runInfo{start: now.Add(-time.Second), revision: rev, digest: digest}, now)
	}
	add("r1", "d1", applyv1.SucceededReason)
	add("r1", "d1", applyv1.SucceededReason) // a no-op: not recorded again
	g.Expect(k.Status.History).To(HaveLen(1))
	g.Expect(k.Status.History[0].Duration.Duration).To(Equal(time.Second))
	add("r2", "", applyv1.BuildFailedReason)
	for i := range 6 {
		add("r3", string(rune('a'+i)), applyv1.SucceededReason)
	}
	g.Expect(k.Status.History).To(HaveLen(historyLength))
	g.Expect(k.Status.History[0].Digest).To(Equal("f"), "newest first")
	g.Expect(lastDigest(k)).To(Equal("f"))
	g.Expect(conditions.GetReason(k, meta.ReadyCondition)).To(Equal(applyv1.SucceededReason))
}

func TestInventoryStale(t *testing.T) {
	g := NewWithT(t)
	old := &applyv1.Inventory{Entries: []applyv1.InventoryEntry{
		{ID: "ns_a_apps_Deployment", Version: "v1"}, {ID: "ns_b__ConfigMap", Version: "v1"}, {ID: "_ns__Namespace", Version: "v1"},
	}}
	cur := &applyv1.Inventory{Entries: []applyv1.InventoryEntry{{ID: "ns_a_apps_Deployment", Version: "v1"}}}
	gone, err := stale(old, cur)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gone).To(HaveLen(2))
	g.Expect(gone[0].GetKind()).To(Equal("ConfigMap"))
	g.Expect(gone[0].GetNamespace()).To(Equal("ns"))
	g.Expect(gone[1].GetKind()).To(Equal("Namespace"))
	g.Expect(gone[1].GetName()).To(Equal("ns"))
	none, err := stale(nil, cur)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(none).To(BeEmpty())
	_, err = stale(&applyv1.Inventory{Entries: []applyv1.InventoryEntry{{ID: "garbage"}}}, nil)
	g.Expect(err).To(HaveOccurred())
}
