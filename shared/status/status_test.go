package status

import (
	"errors"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// object is the least a kind needs for Outcome.
type object struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	conds []metav1.Condition
}

func (o *object) DeepCopyObject() runtime.Object         { c := *o; return &c }
func (o *object) GetConditions() []metav1.Condition      { return o.conds }
func (o *object) SetConditions(conds []metav1.Condition) { o.conds = conds }

func TestOutcome(t *testing.T) {
	deleted := metav1.Now()
	for _, tc := range []struct {
		name              string
		err               error
		suspend, deleting bool
		readyFalseBefore  bool
		wantObserved      bool
		wantReconciling   bool
		wantStalled       bool
		wantReadyReason   string
	}{
		{name: "success", wantObserved: true, wantReadyReason: "Was"},
		{name: "stall", err: reconcile.TerminalError(errors.New("bad spec")), wantObserved: true, wantStalled: true, wantReadyReason: "Was"},
		{name: "retry keeps the step's reason", err: errors.New("registry down"), readyFalseBefore: true, wantReconciling: true, wantReadyReason: "StepFailed"},
		{name: "retry without a reason", err: errors.New("conflict"), wantReconciling: true, wantReadyReason: meta.FailedReason},
		{name: "suspended keeps everything", err: errors.New("x"), suspend: true, wantStalled: true, wantReadyReason: "Was"},
		{name: "deleting keeps everything", err: errors.New("x"), deleting: true, wantStalled: true, wantReadyReason: "Was"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &object{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			if tc.deleting {
				o.DeletionTimestamp = &deleted
			}
			conditions.MarkTrue(o, meta.ReadyCondition, "Was", "before")
			conditions.MarkStalled(o, "Old", "old stall")
			if tc.readyFalseBefore {
				conditions.MarkFalse(o, meta.ReadyCondition, "StepFailed", "registry down")
			}
			var observed int64 = 1
			Outcome(o, Fields{Suspend: tc.suspend, ObservedGeneration: &observed}, tc.err)
			if got := observed == 3; got != tc.wantObserved {
				t.Errorf("observedGeneration %d, want updated: %v", observed, tc.wantObserved)
			}
			if got := conditions.Has(o, meta.ReconcilingCondition); got != tc.wantReconciling {
				t.Errorf("Reconciling present %v, want %v", got, tc.wantReconciling)
			}
			if got := conditions.Has(o, meta.StalledCondition); got != tc.wantStalled {
				t.Errorf("Stalled present %v, want %v", got, tc.wantStalled)
			}
			if got := conditions.GetReason(o, meta.ReadyCondition); got != tc.wantReadyReason {
				t.Errorf("Ready reason %q, want %q", got, tc.wantReadyReason)
			}
		})
	}
}
