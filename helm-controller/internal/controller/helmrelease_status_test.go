package controller

import (
	"errors"
	"testing"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/status"
)

// TestOutcome checks conditions and observedGeneration for each outcome, and how kstatus
// reads them.
func TestOutcome(t *testing.T) {
	cases := []struct {
		name        string
		setup       func(*helmv1.HelmRelease)
		err         error
		reconciling bool
		stalled     bool
		observed    int64
		kstatus     kstatus.Status
	}{
		{"released", func(hr *helmv1.HelmRelease) {
			conditions.MarkReconciling(hr, helmv1.ProgressingReason, "x")
			conditions.MarkTrue(hr, meta.ReadyCondition, helmv1.InstallSucceededReason, "installed")
		}, nil, false, false, 3, kstatus.CurrentStatus},
		{"waiting for a dependency", func(hr *helmv1.HelmRelease) { markFailed(hr, helmv1.DependencyNotReadyReason, "dep") },
			&status.WaitError{Msg: "dependency not ready"}, true, false, 2, kstatus.InProgressStatus},
		{"upgrade failed, retrying", func(hr *helmv1.HelmRelease) { markFailed(hr, helmv1.UpgradeFailedReason, "refused") },
			errors.New("refused"), true, false, 2, kstatus.InProgressStatus},
		{"retries exhausted", func(hr *helmv1.HelmRelease) { markFailed(hr, helmv1.RetriesExhaustedReason, "gave up") },
			status.Exhausted(helmv1.RetriesExhaustedReason, "gave up"), false, true, 3, kstatus.FailedStatus},
		{"stalled", func(hr *helmv1.HelmRelease) {
			conditions.MarkStalled(hr, helmv1.InvalidSpecReason, "no")
			markFailed(hr, helmv1.InvalidSpecReason, "no")
		}, reconcile.TerminalError(errors.New("no")), false, true, 3, kstatus.FailedStatus},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "hr", Namespace: "n", Generation: 3}}
			hr.Status.ObservedGeneration = 2
			tc.setup(hr)
			status.Outcome(hr, status.Fields{ObservedGeneration: &hr.Status.ObservedGeneration}, tc.err)
			g.Expect(conditions.IsReconciling(hr)).To(Equal(tc.reconciling))
			g.Expect(conditions.IsStalled(hr)).To(Equal(tc.stalled))
			g.Expect(hr.Status.ObservedGeneration).To(Equal(tc.observed))
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(hr)
			g.Expect(err).NotTo(HaveOccurred())
			res, err := kstatus.Compute(&unstructured.Unstructured{Object: u})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Status).To(Equal(tc.kstatus), res.Message)
		})
	}
}
