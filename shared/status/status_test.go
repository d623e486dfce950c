package status

import (
	"errors"
	"testing"
	"time"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// object is the least a kind needs for Outcome, shaped as every Plumb kind is.
type object struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Status            struct {
		ObservedGeneration int64              `json:"observedGeneration,omitempty"`
		Conditions         []metav1.Condition `json:"conditions,omitempty"`
	} `json:"status"`
}

func (o *object) DeepCopyObject() runtime.Object         { c := *o; return &c }
func (o *object) GetConditions() []metav1.Condition      { return o.Status.Conditions }
func (o *object) SetConditions(conds []metav1.Condition) { o.Status.Conditions = conds }

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

func TestOutcomeWaitAndExhausted(t *testing.T) {
	o := &object{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	var observed int64 = 1
	conditions.MarkStalled(o, "Old", "old stall")
	err := Wait(nil, o, "", "DependencyNotReady", "dependency %s is not ready", "a/b")
	Outcome(o, Fields{ObservedGeneration: &observed}, err)
	if observed != 1 || conditions.Has(o, meta.StalledCondition) || !conditions.IsReconciling(o) {
		t.Errorf("wait: observed %d, stalled %v, reconciling %v; want 1, false, true", observed, conditions.Has(o, meta.StalledCondition), conditions.IsReconciling(o))
	}
	if got := conditions.GetReason(o, meta.ReadyCondition); got != "DependencyNotReady" {
		t.Errorf("wait: Ready reason %q", got)
	}

	Outcome(o, Fields{ObservedGeneration: &observed}, Exhausted("RetriesExhausted", "upgrade failed 3 times"))
	if observed != 2 || conditions.GetReason(o, meta.StalledCondition) != "RetriesExhausted" || conditions.IsReconciling(o) {
		t.Errorf("exhausted: observed %d, stalled reason %q, reconciling %v", observed, conditions.GetReason(o, meta.StalledCondition), conditions.IsReconciling(o))
	}
}

func TestRequeue(t *testing.T) {
	transient := errors.New("registry down")
	terminal := reconcile.TerminalError(errors.New("bad spec"))
	for _, tc := range []struct {
		name      string
		f         Fields
		err       error
		wantAfter time.Duration // lower bound; jitter adds up to 5 %
		wantErr   error
	}{
		{name: "success keeps the result", err: nil, wantAfter: time.Minute},
		{name: "terminal error is returned", err: terminal, wantErr: terminal},
		{name: "transient with backoff", err: transient, wantErr: transient},
		{name: "transient with retry interval", f: Fields{RetryInterval: 2 * time.Minute}, err: transient, wantAfter: 2 * time.Minute},
		{name: "wait at its own interval", f: Fields{RetryInterval: 2 * time.Minute, WaitInterval: 5 * time.Second}, err: &WaitError{"x"}, wantAfter: 5 * time.Second},
		{name: "wait falls back to the retry interval", f: Fields{RetryInterval: 2 * time.Minute}, err: &WaitError{"x"}, wantAfter: 2 * time.Minute},
		{name: "wait falls back to the default", err: &WaitError{"x"}, wantAfter: DefaultWaitInterval},
		{name: "exhausted at the interval", f: Fields{Interval: time.Hour}, err: Exhausted("R", "x"), wantAfter: time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Requeue(tc.f, ctrl.Result{RequeueAfter: time.Minute}, tc.err)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if res.RequeueAfter < tc.wantAfter || res.RequeueAfter > tc.wantAfter+tc.wantAfter/20+1 {
				t.Errorf("requeue after %v, want %v (+5 %%)", res.RequeueAfter, tc.wantAfter)
			}
		})
	}
}

func TestMergePatch(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after map[string]any
		want          string
	}{
		{name: "same", before: map[string]any{"status": map[string]any{"a": int64(1)}}, after: map[string]any{"status": map[string]any{"a": int64(1)}}, want: ""},
		{name: "changed and added", before: map[string]any{"status": map[string]any{"a": int64(1), "b": "x"}},
			after: map[string]any{"status": map[string]any{"a": int64(2), "b": "x", "c": true}}, want: `{"status":{"a":2,"c":true}}`},
		{name: "removed is null", before: map[string]any{"status": map[string]any{"a": int64(1), "b": "x"}},
			after: map[string]any{"status": map[string]any{"b": "x"}}, want: `{"status":{"a":null}}`},
		{name: "lists are replaced whole", before: map[string]any{"status": map[string]any{"l": []any{"a", "b"}}},
			after: map[string]any{"status": map[string]any{"l": []any{"b"}}}, want: `{"status":{"l":["b"]}}`},
		{name: "no status before", before: map[string]any{"status": nil},
			after: map[string]any{"status": map[string]any{"a": int64(1)}}, want: `{"status":{"a":1}}`},
		{name: "nothing either side", before: map[string]any{"metadata": map[string]any{"finalizers": nil}},
			after: map[string]any{"metadata": map[string]any{"finalizers": nil}}, want: ""},
		{name: "finalizer added", before: map[string]any{"metadata": map[string]any{"finalizers": nil}},
			after: map[string]any{"metadata": map[string]any{"finalizers": []any{"plumb.dev/finalizer"}}}, want: `{"metadata":{"finalizers":["plumb.dev/finalizer"]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mergePatch(tc.before, tc.after)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("patch %s, want %s", got, tc.want)
			}
		})
	}
}

// TestOutcomeAsKstatusReadsIt: for each outcome, the conditions and observedGeneration every kind
// ends with, and how kstatus (kubectl wait, Flux-style tooling) reads them.
func TestOutcomeAsKstatusReadsIt(t *testing.T) {
	for _, tc := range []struct {
		name        string
		readyBefore metav1.ConditionStatus
		err         error
		reconciling bool
		stalled     bool
		observed    int64
		want        kstatus.Status
	}{
		{"done", metav1.ConditionTrue, nil, false, false, 3, kstatus.CurrentStatus},
		{"waiting", metav1.ConditionFalse, &WaitError{Msg: "dependency not ready"}, true, false, 2, kstatus.InProgressStatus},
		{"failed, retrying", metav1.ConditionFalse, errors.New("refused"), true, false, 2, kstatus.InProgressStatus},
		{"retries exhausted", metav1.ConditionFalse, Exhausted("RetriesExhausted", "gave up"), false, true, 3, kstatus.FailedStatus},
		{"stalled", metav1.ConditionFalse, reconcile.TerminalError(errors.New("bad spec")), false, true, 3, kstatus.FailedStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &object{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "n", Generation: 3}}
			o.Status.ObservedGeneration = 2
			conditions.MarkReconciling(o, meta.ProgressingReason, "reconciling generation 3")
			conditions.Set(o, &metav1.Condition{Type: meta.ReadyCondition, Status: tc.readyBefore, Reason: "Step", Message: "x"})
			if errors.Is(tc.err, reconcile.TerminalError(nil)) {
				conditions.MarkStalled(o, "Step", "x") // as Stall does
			}
			Outcome(o, Fields{ObservedGeneration: &o.Status.ObservedGeneration}, tc.err)
			if got := conditions.IsReconciling(o); got != tc.reconciling {
				t.Errorf("Reconciling %v, want %v", got, tc.reconciling)
			}
			if got := conditions.IsStalled(o); got != tc.stalled {
				t.Errorf("Stalled %v, want %v", got, tc.stalled)
			}
			if o.Status.ObservedGeneration != tc.observed {
				t.Errorf("observedGeneration %d, want %d", o.Status.ObservedGeneration, tc.observed)
			}
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
			if err != nil {
				t.Fatal(err)
			}
			res, err := kstatus.Compute(&unstructured.Unstructured{Object: u})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want {
				t.Errorf("kstatus %s (%s), want %s", res.Status, res.Message, tc.want)
			}
		})
	}
}
