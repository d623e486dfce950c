package dashboard

import (
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/shared/reconcile"
)

// objectKey names an object across kinds: group/Kind/namespace/name, which is also the path of
// its page under /o/.
func objectKey(group, kind, ns, name string) string {
	return group + "/" + kind + "/" + ns + "/" + name
}

func keyOf(u *unstructured.Unstructured) string {
	return objectKey(u.GroupVersionKind().Group, u.GetKind(), u.GetNamespace(), u.GetName())
}

func hrefOf(key string) string { return "/o/" + key }

// state sums an object up in one word a person reads first.
type state string

const (
	stateReady       state = "Ready"
	stateFailed      state = "Failed"
	stateStalled     state = "Stalled"
	stateReconciling state = "Reconciling"
	stateSuspended   state = "Suspended"
	stateUnknown     state = "Unknown"
)

// states in the order the overview counts them.
var states = []state{stateReady, stateFailed, stateStalled, stateReconciling, stateSuspended, stateUnknown}

// Symbol goes with the word, so that the state does not rest on colour alone.
func (s state) Symbol() string {
	switch s {
	case stateReady:
		return "✔"
	case stateFailed:
		return "✖"
	case stateStalled:
		return "‼"
	case stateReconciling:
		return "↻"
	case stateSuspended:
		return "‖"
	}
	return "?"
}

// Failing says whether the object blocks what depends on it.
func (s state) Failing() bool { return s == stateFailed || s == stateStalled }

// Class is the CSS class of the state.
func (s state) Class() string { return "st-" + strings.ToLower(string(s)) }

// stateOf reads an object's conditions as kstatus does: suspended first (nothing happens), then
// Stalled (retrying cannot help), Ready=False (failing, retried), in progress (Reconciling, or
// Ready not yet for the current generation), Ready.
func stateOf(u *unstructured.Unstructured) state {
	if kinds.Suspended(u) {
		return stateSuspended
	}
	if c := kinds.Condition(u, meta.StalledCondition); c != nil && c.Status == metav1.ConditionTrue {
		return stateStalled
	}
	ready := kinds.Condition(u, meta.ReadyCondition)
	if ready == nil {
		return stateUnknown
	}
	if ready.Status == metav1.ConditionFalse {
		return stateFailed
	}
	if c := kinds.Condition(u, meta.ReconcilingCondition); c != nil && c.Status == metav1.ConditionTrue {
		return stateReconciling
	}
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if ready.Status != metav1.ConditionTrue || observed < u.GetGeneration() {
		return stateReconciling
	}
	return stateReady
}

// pending says whether a reconcile was requested and its controller has not handled it yet.
func pending(u *unstructured.Unstructured) bool {
	v, ok := reconcile.RequestedAt(u.GetAnnotations())
	return ok && v != kinds.LastHandled(u)
}

// lastChange is when the object's controller last did something visible: Ready's transition,
// the last run of a Kustomization, the last Helm release, the artifact, the last request handled.
func lastChange(u *unstructured.Unstructured) time.Time {
	var t time.Time
	later := func(s string) {
		if v, err := time.Parse(time.RFC3339Nano, s); err == nil && v.After(t) {
			t = v
		}
	}
	if c := kinds.Condition(u, meta.ReadyCondition); c != nil && c.LastTransitionTime.After(t) {
		t = c.LastTransitionTime.Time
	}
	if h, _, _ := unstructured.NestedSlice(u.Object, "status", "history"); len(h) > 0 {
		if m, ok := h[0].(map[string]any); ok {
			for _, f := range []string{"time", "lastDeployed"} {
				if s, ok := m[f].(string); ok {
					later(s)
				}
			}
		}
	}
	if s, ok, _ := unstructured.NestedString(u.Object, "status", "artifact", "lastUpdateTime"); ok {
		later(s)
	}
	later(kinds.LastHandled(u))
	return t
}

// row is what the overview shows of an object.
type row struct {
	Key, Href, Kind, Namespace, Name string
	State                            state
	Reason, Message, Revision        string
	LastChange                       time.Time
	Pending                          bool
}

func rowOf(u *unstructured.Unstructured) row {
	key := keyOf(u)
	_, msg := kinds.State(u)
	return row{
		Key: key, Href: hrefOf(key), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
		State: stateOf(u), Reason: kinds.Reason(u), Message: oneLine(msg, 160), Revision: kinds.Revision(u),
		LastChange: lastChange(u), Pending: pending(u),
	}
}

// oneLine folds a message into one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// kindOrder is a kind's place in kinds.All, the order pages list kinds in.
func kindOrder(kind string) int {
	for i, k := range kinds.All {
		if k.GVK.Kind == kind {
			return i
		}
	}
	return len(kinds.All)
}
