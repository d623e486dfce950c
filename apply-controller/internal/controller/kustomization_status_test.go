package controller

import (
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

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
