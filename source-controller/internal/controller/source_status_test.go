package controller

import (
	"errors"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	plumbstatus "github.com/plumb-dev/plumb/shared/status"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// TestSetOutcome checks the conditions and observedGeneration that finalizeStatus writes for each
// outcome, and that kstatus reads them as a user expects.
func TestSetOutcome(t *testing.T) {
	now := metav1.Now()
	cases := []struct {
		name        string
		setup       func(*sourcev1.GitRepository)
		err         error
		ready       metav1.ConditionStatus
		reason      string
		reconciling bool
		stalled     bool
		observed    int64
		kstatus     status.Status
	}{
		{
			name:     "success",
			setup:    func(o *sourcev1.GitRepository) { markReconciling(o, "x"); markReady(o, "main@sha1:abc") },
			ready:    metav1.ConditionTrue,
			reason:   sourcev1.SucceededReason,
			observed: 3,
			kstatus:  status.CurrentStatus,
		},
		{
			name: "success clears an old stall",
			setup: func(o *sourcev1.GitRepository) {
				conditions.MarkStalled(o, sourcev1.InvalidSpecReason, "bad")
				markReady(o, "main@sha1:abc")
			},
			ready:    metav1.ConditionTrue,
			reason:   sourcev1.SucceededReason,
			observed: 3,
			kstatus:  status.CurrentStatus,
		},
		{
			name:        "transient failure keeps retrying",
			setup:       func(o *sourcev1.GitRepository) { markFailed(o, sourcev1.GitOperationFailedReason, "unreachable") },
			err:         errors.New("unreachable"),
			ready:       metav1.ConditionFalse,
			reason:      sourcev1.GitOperationFailedReason,
			reconciling: true,
			observed:    2,
			kstatus:     status.InProgressStatus,
		},
		{
			name:        "failure without a condition gets a generic one",
			setup:       func(*sourcev1.GitRepository) {},
			err:         errors.New("boom"),
			ready:       metav1.ConditionFalse,
			reason:      meta.FailedReason,
			reconciling: true,
			observed:    2,
			kstatus:     status.InProgressStatus,
		},
		{
			name: "stall",
			setup: func(o *sourcev1.GitRepository) {
				markReconciling(o, "x")
				conditions.MarkStalled(o, sourcev1.InvalidSpecReason, "bad semver")
				markFailed(o, sourcev1.InvalidSpecReason, "bad semver")
			},
			err:      reconcile.TerminalError(errors.New("bad semver")),
			ready:    metav1.ConditionFalse,
			reason:   sourcev1.InvalidSpecReason,
			stalled:  true,
			observed: 3,
			kstatus:  status.FailedStatus,
		},
		{
			name: "suspended leaves status alone",
			setup: func(o *sourcev1.GitRepository) {
				o.Spec.Suspend = true
				markReady(o, "main@sha1:abc")
			},
			ready:    metav1.ConditionTrue,
			reason:   sourcev1.SucceededReason,
			observed: 2,
			kstatus:  status.InProgressStatus, // generation 3 not observed yet
		},
		{
			name: "being deleted leaves status alone",
			setup: func(o *sourcev1.GitRepository) {
				o.DeletionTimestamp = &now
				o.Finalizers = []string{sourcev1.SourceFinalizer}
				markReady(o, "main@sha1:abc")
			},
			err:      errors.New("delete failed"),
			ready:    metav1.ConditionTrue,
			reason:   sourcev1.SucceededReason,
			observed: 2,
			kstatus:  status.TerminatingStatus,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "y", Generation: 3}}
			obj.Status.ObservedGeneration = 2
			tc.setup(obj)
			plumbstatus.Outcome(obj, gitStatus(obj), tc.err)

			ready := conditions.Get(obj, meta.ReadyCondition)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(tc.ready))
			g.Expect(ready.Reason).To(Equal(tc.reason))
			g.Expect(conditions.IsReconciling(obj)).To(Equal(tc.reconciling))
			g.Expect(conditions.IsStalled(obj)).To(Equal(tc.stalled))
			g.Expect(obj.Status.ObservedGeneration).To(Equal(tc.observed))

			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			g.Expect(err).NotTo(HaveOccurred())
			res, err := status.Compute(&unstructured.Unstructured{Object: u})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Status).To(Equal(tc.kstatus), res.Message)
		})
	}
}

// TestStepConditions: the served artifact stays visible while a fetch fails, and FetchFailed
// names the fetch's failure only while it lasts.
func TestStepConditions(t *testing.T) {
	g := NewWithT(t)
	o := &sourcev1.GitRepository{}
	markFailed(o, sourcev1.AuthenticationFailedReason, "remote refused the credentials")
	stepConditions(o)
	g.Expect(conditions.Has(o, sourcev1.ArtifactInStorageCondition)).To(BeFalse(), "no artifact yet")
	g.Expect(conditions.IsTrue(o, sourcev1.FetchFailedCondition)).To(BeTrue())
	g.Expect(conditions.GetReason(o, sourcev1.FetchFailedCondition)).To(Equal(sourcev1.AuthenticationFailedReason))

	o.Status.Artifact = &meta.Artifact{Revision: "main@sha1:abc"}
	markReady(o, "main@sha1:abc")
	stepConditions(o)
	g.Expect(conditions.Has(o, sourcev1.FetchFailedCondition)).To(BeFalse())
	g.Expect(conditions.GetMessage(o, sourcev1.ArtifactInStorageCondition)).To(ContainSubstring("main@sha1:abc"))

	markFailed(o, sourcev1.GitOperationFailedReason, "connection refused")
	stepConditions(o)
	g.Expect(conditions.IsTrue(o, sourcev1.ArtifactInStorageCondition)).To(BeTrue(), "the old artifact is still served")
	g.Expect(conditions.GetReason(o, sourcev1.FetchFailedCondition)).To(Equal(sourcev1.GitOperationFailedReason))

	markFailed(o, sourcev1.ArtifactFailedReason, "disk full")
	stepConditions(o)
	g.Expect(conditions.Has(o, sourcev1.FetchFailedCondition)).To(BeFalse(), "the fetch passed; another step failed")
}
