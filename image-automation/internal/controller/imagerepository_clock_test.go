package controller

import (
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/image-automation/internal/tags"
)

// The wall clock jumps an hour back and an hour forward between the scans of an ImageRepository
// (its scan time is the wall clock's, kept in status). The work queue requeues on the monotonic
// clock, so the reconcile comes at the interval whatever the wall clock says; what the jump can
// move is whether that reconcile scans. Back, it must scan, not wait an hour more; forward, it
// scans once and the next scan waits the whole interval again (no scan at every reconcile).
func TestImageRepository_ScanDueAcrossClockJumps(t *testing.T) {
	g := NewWithT(t)
	store, err := tags.New(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	key := types.NamespacedName{Namespace: "clock", Name: "web"}
	list, err := store.Put(key, "registry.example.invalid/web", "registry.example.invalid/web", []string{"1.0.0"})
	g.Expect(err).NotTo(HaveOccurred())
	start := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(start)
	r := &ImageRepositoryReconciler{Tags: store, Clock: clk}
	const interval = 10 * time.Minute
	obj := &imagev1.ImageRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Generation: 1},
		Spec:       imagev1.ImageRepositorySpec{Image: "registry.example.invalid/web", Interval: metav1.Duration{Duration: interval}},
	}
	obj.Status.ObservedGeneration = 1
	conditions.MarkTrue(obj, meta.ReadyCondition, imagev1.SucceededReason, "1 tags")
	scanned := func() {
		// Status keeps whole seconds.
		obj.Status.LastScanResult = &imagev1.ScanResult{TagCount: 1, ScanTime: metav1.NewTime(clk.Now().Truncate(time.Second)), Revision: list.Revision}
	}
	due := func(after time.Duration) (time.Duration, bool) {
		clk.SetTime(clk.Now().Add(after))
		return r.scanDue(obj, nil)
	}

	scanned()
	wait, ok := due(time.Second)
	g.Expect(ok).To(BeFalse(), "a second after a scan")
	g.Expect(wait).To(BeNumerically("~", interval-time.Second, time.Second))

	// Back an hour: the requeue comes after the interval, when the wall clock reads 50 minutes
	// before the last scan.
	clk.SetTime(clk.Now().Add(-time.Hour))
	_, ok = due(wait)
	g.Expect(ok).To(BeTrue(), "the scan is due at its requeue after the clock went back an hour, not an hour later")
	scanned()
	wait, ok = due(0)
	g.Expect(ok).To(BeFalse(), "just after the scan that followed the jump back")
	g.Expect(wait).To(BeNumerically("~", interval, time.Second))

	// Forward an hour: the next reconcile scans once; the one after it waits the interval.
	clk.SetTime(clk.Now().Add(time.Hour))
	_, ok = due(time.Second)
	g.Expect(ok).To(BeTrue(), "the scan is due after the clock went forward an hour")
	scanned()
	for _, after := range []time.Duration{0, time.Second, time.Minute} {
		wait, ok = due(after)
		g.Expect(ok).To(BeFalse(), "%s after the scan that followed the jump forward", after)
		g.Expect(wait).To(BeNumerically(">", interval-2*time.Minute))
	}
}
