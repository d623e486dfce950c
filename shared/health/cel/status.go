package cel

import (
	"context"
	"fmt"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// HealthCheck is one entry of healthCheckExprs: the expressions that judge the objects of a
// group (and kind).
type HealthCheck struct {
	// APIVersion of the objects; only its group is matched.
	APIVersion string
	// Kind of the objects; empty for every kind of the group.
	Kind       string
	Current    string
	InProgress string
	Failed     string
}

// Evaluator judges objects with the healthCheckExprs that match their group and kind. It
// implements health.StatusFunc through Status.
type Evaluator struct {
	checks map[schema.GroupKind]*checkExprs
}

type checkExprs struct{ inProgress, failed, current *Expression }

// CheckError is a healthCheckExprs entry that cannot be used: it names the entry's kind and
// the expression, for a Stalled message.
type CheckError struct {
	Field string // e.g. spec.healthCheckExprs[0].current
	Kind  string // group/kind the entry is for
	Err   error
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("%s (for %s): %v", e.Field, e.Kind, e.Err)
}

func (e *CheckError) Unwrap() error { return e.Err }

// NewEvaluator compiles the expressions of checks (once per expression text, across calls);
// field is the checks' place in the spec, e.g. spec.healthCheckExprs. It returns a
// *CheckError for an expression that does not compile, an entry without current, or two
// entries for the same group and kind. No checks give a nil Evaluator, which judges nothing.
func NewEvaluator(field string, checks []HealthCheck) (*Evaluator, error) {
	if len(checks) == 0 {
		return nil, nil
	}
	ev := &Evaluator{checks: make(map[schema.GroupKind]*checkExprs, len(checks))}
	for i, c := range checks {
		gk := schema.FromAPIVersionAndKind(c.APIVersion, c.Kind).GroupKind()
		at := fmt.Sprintf("%s[%d]", field, i)
		name := gk.String()
		if c.Kind == "" {
			name = "group " + gk.Group
		}
		fail := func(f string, err error) error { return &CheckError{Field: at + f, Kind: name, Err: err} }
		if _, dup := ev.checks[gk]; dup {
			return nil, fail("", fmt.Errorf("a second entry for the same group and kind"))
		}
		if c.Current == "" {
			return nil, fail(".current", fmt.Errorf("required"))
		}
		var ce checkExprs
		for _, e := range []struct {
			f   string
			src string
			to  **Expression
		}{{".inProgress", c.InProgress, &ce.inProgress}, {".failed", c.Failed, &ce.failed}, {".current", c.Current, &ce.current}} {
			if e.src == "" {
				continue
			}
			x, err := Object(e.src)
			if err != nil {
				return nil, fail(e.f, err)
			}
			*e.to = x
		}
		ev.checks[gk] = &ce
	}
	return ev, nil
}

// Judges reports whether an entry matches objects of gk (by kind, or by group), so that Status
// judges them rather than kstatus.
func (ev *Evaluator) Judges(gk schema.GroupKind) bool {
	if ev == nil {
		return false
	}
	_, kind := ev.checks[gk]
	_, group := ev.checks[schema.GroupKind{Group: gk.Group}]
	return kind || group
}

// Status judges u with the entry for its group and kind (or, failing that, its group). It
// returns false when no entry matches, so that kstatus judges the object. An expression that
// fails to evaluate (a field the object does not have yet) leaves the object in progress, with
// the error as message: Flux waits in that case too.
func (ev *Evaluator) Status(ctx context.Context, u *unstructured.Unstructured) (*status.Result, bool) {
	if ev == nil {
		return nil, false
	}
	gk := u.GroupVersionKind().GroupKind()
	ce, ok := ev.checks[gk]
	if !ok {
		if ce, ok = ev.checks[schema.GroupKind{Group: gk.Group}]; !ok {
			return nil, false
		}
	}
	obj := u.UnstructuredContent()
	gen, hasGen, _ := unstructured.NestedInt64(obj, "metadata", "generation")
	observed, hasObserved, _ := unstructured.NestedInt64(obj, "status", "observedGeneration")
	if hasGen && hasObserved && gen != observed {
		return &status.Result{Status: status.InProgressStatus, Message: fmt.Sprintf("generation %d not yet observed (%d)", gen, observed)}, true
	}
	for _, e := range []struct {
		x  *Expression
		st status.Status
	}{{ce.inProgress, status.InProgressStatus}, {ce.failed, status.FailedStatus}, {ce.current, status.CurrentStatus}} {
		if e.x == nil {
			continue
		}
		ok, err := e.x.Eval(ctx, obj)
		if err != nil {
			return &status.Result{Status: status.InProgressStatus, Message: err.Error()}, true
		}
		if ok {
			return &status.Result{Status: e.st, Message: "healthCheckExprs: " + e.x.String()}, true
		}
	}
	return &status.Result{Status: status.InProgressStatus, Message: "no expression of healthCheckExprs is true yet"}, true
}
