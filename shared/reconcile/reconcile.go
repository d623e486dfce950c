// Package reconcile owns the reconcile-request contract that every Plumb kind honours: setting
// the annotation reconcile.plumb.dev/requestedAt to a new value asks for an immediate reconcile,
// and the handled value is echoed in status.lastHandledReconcileAt.
package reconcile

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// RequestedAtAnnotation asks for a reconcile when its value changes.
const RequestedAtAnnotation = "reconcile.plumb.dev/requestedAt"

// RequestedAt returns the value of the reconcile annotation and whether it is set.
func RequestedAt(annotations map[string]string) (string, bool) {
	v, ok := annotations[RequestedAtAnnotation]
	return v, ok
}

// RequestPatch is the merge patch that asks for a reconcile: it sets the annotation to value
// (a timestamp, so that each request differs from the last).
func RequestPatch(value string) client.Patch {
	return client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, RequestedAtAnnotation, value))
}

// Requested passes updates that change the reconcile annotation (or another request
// annotation, when Annotation is set). Combine it with predicate.GenerationChangedPredicate in
// a predicate.Or.
type Requested struct {
	predicate.Funcs
	// Annotation is the request annotation; empty means RequestedAtAnnotation.
	Annotation string
}

// Update passes when the annotation is set and its value differs from the old object's.
func (r Requested) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	key := r.Annotation
	if key == "" {
		key = RequestedAtAnnotation
	}
	v, ok := e.ObjectNew.GetAnnotations()[key]
	if !ok {
		return false
	}
	old, okOld := e.ObjectOld.GetAnnotations()[key]
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

// Recovered turns a panic of a reconcile into its error, so that the deferred status patch
// reports a failure (and the reconcile is retried) instead of keeping the state from before the
// panic. Call it first in the deferred function that writes status, with recover() as p:
//
//	defer func() { plumbreconcile.Recovered(ctx, recover(), &retErr); r.finalizeStatus(…) }()
func Recovered(ctx context.Context, p any, err *error) {
	if p == nil {
		return
	}
	*err = fmt.Errorf("internal error, please report it: %v", p)
	log.FromContext(ctx).Error(*err, "reconcile panicked", "stack", string(debug.Stack()))
}

// Cycle follows the references of start (next lists a node's references; it may read the
// cache) and returns a path that leads back to start — start first and last — or nil when
// none does. Each node is followed once.
func Cycle[K comparable](start K, next func(K) []K) []K {
	visited := map[K]bool{}
	var walk func(n K, path []K) []K
	walk = func(n K, path []K) []K {
		for _, m := range next(n) {
			p := append(path[:len(path):len(path)], m)
			if m == start {
				return p
			}
			if visited[m] {
				continue
			}
			visited[m] = true
			if c := walk(m, p); c != nil {
				return c
			}
		}
		return nil
	}
	return walk(start, []K{start})
}

// DependencyCycle follows the dependencies of obj through objects of its own kind, read with r
// (a cache) into fresh objects, and returns the cycle back to obj as "ns/a -> ns/b -> ns/a", or
// "" when there is none. deps lists the dependencies of that same kind.
func DependencyCycle[T client.Object](ctx context.Context, r client.Reader, obj T, fresh func() T, deps func(T) []types.NamespacedName) string {
	start := client.ObjectKeyFromObject(obj)
	cycle := Cycle(start, func(n types.NamespacedName) []types.NamespacedName {
		o := obj
		if n != start {
			o = fresh()
			if err := r.Get(ctx, n, o); err != nil {
				return nil
			}
		}
		return deps(o)
	})
	path := make([]string, len(cycle))
	for i, n := range cycle {
		path[i] = n.String()
	}
	return strings.Join(path, " -> ")
}
