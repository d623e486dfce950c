// Package status settles a reconcile's outcome in an object's conditions and writes it back:
// Ready, Reconciling and Stalled as docs/contracts/conditions.md describes them,
// observedGeneration, lastHandledReconcileAt, and the plumb_condition metric. Every Plumb
// controller settles status here, so that every kind reads the same way.
//
// A reconcile step reports its outcome by what it returns:
//   - nil: done; Ready is whatever the steps set (normally True).
//   - Fail: a transient failure. Ready=False with the step's reason; retried.
//   - Wait: something the object needs is not there yet. Not a failure; looked at again soon.
//   - Stall: retrying cannot help. Stalled=True until the object changes.
//   - Exhausted: the object's own retry budget is spent. Stalled=True, looked at again at its
//     interval.
package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/metrics"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// DefaultWaitInterval is how soon a waiting object is looked at again when its kind names no
// interval of its own.
const DefaultWaitInterval = 30 * time.Second

// Fields points at the status fields every kind has, and says how its outcomes requeue.
type Fields struct {
	Kind               string
	Suspend            bool
	ObservedGeneration *int64
	Requests           *meta.ReconcileRequestStatus
	// RetryInterval brings a transient failure back after this long; 0 leaves it to the work
	// queue's exponential backoff.
	RetryInterval time.Duration
	// WaitInterval brings a waiting object back after this long; 0 means RetryInterval, or
	// DefaultWaitInterval when that is 0 too.
	WaitInterval time.Duration
	// Interval brings an object whose retries are exhausted back after this long.
	Interval time.Duration
	// Redact, when set, masks what condition messages and logs must not show.
	Redact func(string) string
}

// WaitError is returned by Wait: the reconcile did not fail, it waits for something.
type WaitError struct{ Msg string }

func (e *WaitError) Error() string { return e.Msg }

// ExhaustedError is returned by Exhausted: the object's retries are spent.
type ExhaustedError struct{ Reason, Msg string }

func (e *ExhaustedError) Error() string { return e.Msg }

// Stall marks a failure that retrying cannot fix: Stalled=True, Ready=False, a Warning event, and
// a terminal error, so that only a change of the object reconciles it again.
func Stall(rec recorder.EventRecorder, obj conditions.Setter, reason, msg string) error {
	conditions.MarkStalled(obj, reason, "%s", msg)
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", msg)
	events.Record(rec, obj, "", corev1.EventTypeWarning, reason, "%s", msg)
	return reconcile.TerminalError(errors.New(msg))
}

// Fail marks Ready=False with the step's reason, records a Warning event about revision (when
// known), and returns err to retry with.
func Fail(rec recorder.EventRecorder, obj conditions.Setter, revision, reason string, err error) error {
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%v", err)
	events.Record(rec, obj, revision, corev1.EventTypeWarning, reason, "%v", err)
	return err
}

// Wait marks Ready=False while something the object needs is not there yet, with a Normal event
// when the reason or message changes, and returns a *WaitError.
func Wait(rec recorder.EventRecorder, obj conditions.Setter, revision, reason, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if conditions.GetReason(obj, meta.ReadyCondition) != reason || conditions.GetMessage(obj, meta.ReadyCondition) != msg {
		events.Record(rec, obj, revision, corev1.EventTypeNormal, reason, "%s", msg)
	}
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", msg)
	return &WaitError{Msg: msg}
}

// Exhausted returns the error that marks an object's retries as spent: Stalled=True with reason,
// looked at again at Fields.Interval. Ready is left as the failing step set it.
func Exhausted(reason, msg string) error { return &ExhaustedError{Reason: reason, Msg: msg} }

// Outcome sets the conditions and observedGeneration from the error a reconcile returned: nil
// clears Reconciling and Stalled; a terminal error keeps Stalled; a wait marks Reconciling; any
// other error keeps Ready False and marks Reconciling with a retry. Deleted and suspended
// objects keep their last state.
func Outcome(obj conditions.Setter, f Fields, err error) {
	var w *WaitError
	var ex *ExhaustedError
	switch {
	case !obj.GetDeletionTimestamp().IsZero(), f.Suspend:
	case errors.As(err, &ex):
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.MarkStalled(obj, ex.Reason, "%s", ex.Msg)
		*f.ObservedGeneration = obj.GetGeneration()
	case err == nil:
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.Delete(obj, meta.StalledCondition)
		*f.ObservedGeneration = obj.GetGeneration()
	case errors.Is(err, reconcile.TerminalError(nil)):
		conditions.Delete(obj, meta.ReconcilingCondition)
		*f.ObservedGeneration = obj.GetGeneration()
	case errors.As(err, &w):
		conditions.Delete(obj, meta.StalledCondition)
		conditions.MarkReconciling(obj, meta.ProgressingReason, "waiting: %s", w.Msg)
	default:
		conditions.Delete(obj, meta.StalledCondition)
		if !conditions.IsFalse(obj, meta.ReadyCondition) {
			conditions.MarkFalse(obj, meta.ReadyCondition, meta.FailedReason, "%v", err)
		}
		conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason, "retrying after: %s", conditions.GetReason(obj, meta.ReadyCondition))
	}
}

// Requeue turns a reconcile's error into what controller-runtime should do next: waits and
// exhausted retries come back after their interval without an error; transient failures come
// back after RetryInterval when it is set, else through the work queue's backoff.
func Requeue(f Fields, result ctrl.Result, err error) (ctrl.Result, error) {
	var w *WaitError
	var ex *ExhaustedError
	switch {
	case err == nil:
		return result, nil
	case errors.Is(err, reconcile.TerminalError(nil)):
		return ctrl.Result{}, err
	case errors.As(err, &ex):
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(f.Interval)}, nil
	case errors.As(err, &w):
		after := f.WaitInterval
		if after == 0 {
			after = f.RetryInterval
		}
		if after == 0 {
			after = DefaultWaitInterval
		}
		return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(after)}, nil
	case f.RetryInterval > 0:
		return ctrl.Result{RequeueAfter: f.RetryInterval}, nil
	}
	return ctrl.Result{}, err
}

// Finish ends every reconcile, deferred at its top: it records the handled reconcile request,
// settles the outcome, masks what Redact names, updates (or, for an object being deleted, drops)
// the condition metrics, writes metadata and status through p, and turns the error into the
// reconcile's result. A failed write joins retErr.
func Finish(ctx context.Context, obj conditions.Setter, f Fields, p *Patcher, owner string, result *ctrl.Result, retErr *error) {
	if v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations()); ok && f.Requests != nil {
		f.Requests.LastHandledReconcileAt = v
	}
	Outcome(obj, f, *retErr)
	if f.Redact != nil {
		conds := obj.GetConditions()
		for i := range conds {
			conds[i].Message = f.Redact(conds[i].Message)
		}
		obj.SetConditions(conds)
	}
	deleting := !obj.GetDeletionTimestamp().IsZero()
	if deleting {
		metrics.Forget(f.Kind, obj.GetNamespace(), obj.GetName())
	} else {
		metrics.RecordConditions(f.Kind, obj.GetNamespace(), obj.GetName(), obj.GetConditions())
	}
	if err := p.Patch(ctx, obj, owner); err != nil && !(apierrors.IsNotFound(err) && deleting) {
		log.FromContext(ctx).Error(err, "writing status")
		*retErr = errors.Join(*retErr, err)
		return
	}
	if deleting {
		return // a failed clean-up goes through the work queue's backoff
	}
	res, err := Requeue(f, *result, *retErr)
	if err == nil && *retErr != nil && !errors.As(*retErr, new(*WaitError)) && !errors.As(*retErr, new(*ExhaustedError)) {
		msg := (*retErr).Error()
		if f.Redact != nil {
			msg = f.Redact(msg)
		}
		log.FromContext(ctx).Info("reconcile failed, retrying", "after", res.RequeueAfter.String(), "error", msg)
	}
	*result, *retErr = res, err
}

// Get reads the object a reconcile is about into obj. It reports false, with no error, when the
// object is gone, after dropping its condition metrics (kinds without a finalizer are never seen
// being deleted).
func Get(ctx context.Context, c client.Reader, kind string, key types.NamespacedName, obj client.Object) (bool, error) {
	err := c.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		metrics.Forget(kind, key.Namespace, key.Name)
		return false, nil
	}
	return err == nil, err
}
