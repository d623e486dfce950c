// Package reconcile owns the reconcile-request contract that every Plumb kind honours: setting
// the annotation reconcile.plumb.dev/requestedAt to a new value asks for an immediate reconcile,
// and the handled value is echoed in status.lastHandledReconcileAt.
package reconcile

import (
	"math/rand/v2"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// RequestedAtAnnotation asks for a reconcile when its value changes.
const RequestedAtAnnotation = "reconcile.plumb.dev/requestedAt"

// RequestedAt returns the value of the reconcile annotation and whether it is set.
func RequestedAt(annotations map[string]string) (string, bool) {
	v, ok := annotations[RequestedAtAnnotation]
	return v, ok
}

// Requested passes updates that change the reconcile annotation. Combine it with
// predicate.GenerationChangedPredicate in a predicate.Or.
type Requested struct {
	predicate.Funcs
}

// Update passes when the annotation is set and its value differs from the old object's.
func (Requested) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	v, ok := RequestedAt(e.ObjectNew.GetAnnotations())
	if !ok {
		return false
	}
	old, okOld := RequestedAt(e.ObjectOld.GetAnnotations())
	return !okOld || v != old
}

// Jitter spreads the requeues of objects with the same interval over +0..5 % of it, so that a
// thousand objects created together do not come back together forever.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(int64(d)/20+1))
}
