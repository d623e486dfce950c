package controller

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/health"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// Health waits that do not hold a worker. A run that has applied its objects and finds some not
// yet healthy (a Deployment whose controller has not reported the new generation) parks: it
// keeps in memory what it would write (status, the run's facts, the objects still waited for,
// its deadline), writes nothing, and gives its worker back. The metadata cache wakes it when
// one of the objects it waits for changes (or the work queue does: after 30 s, or, when the
// objects cannot be watched yet, after the backoff a blocking wait polls with). The next
// reconcile of the Kustomization resumes the run when nothing that shaped it changed
// (generation, source revision, build, reconcile request) and judges the waited-for objects
// again, from the watch where it can: healthy, the run ends as it would have, in one status
// patch; past the deadline, it fails as a wait that timed out. Any other reconcile drops the
// parked run and starts afresh, as a new revision supersedes a wait. With the workers busy
// waiting on kube-controller-manager, a burst of Kustomizations queued behind them; parked,
// the workers apply while kube-controller-manager catches up.
//
// A parked run is memory only: a controller that restarts meanwhile has written neither the new
// revision nor Ready, so its next run applies again (a no-op) and waits afresh.

// healthWait is checkHealth's answer when the run parks: the objects not yet healthy, and why.
type healthWait struct {
	pending []*unstructured.Unstructured
	why     []string
	// wake is closed at the next change of the objects of the check, watched from before the
	// check looked at them (nil: they cannot be watched yet); stop ends that watching.
	wake <-chan struct{}
	stop func()
}

func (w *healthWait) Error() string { return "waiting for health checks" }

// parkedRun is a run waiting for the health of what it applied.
type parkedRun struct {
	generation  int64
	revision    string
	digest      string
	requestedAt string

	status   applyv1.KustomizationStatus // as the run leaves it before the wait ends
	info     runInfo
	objs     []*unstructured.Unstructured
	applied  *observed // what the apply wrote, for the generation the watch must reach
	checked  *observed // what the health checks judged, for the records
	keep     bool      // an unchanged build: records of objects not applied stand
	total    int       // the objects the health check judges, waited for or not
	pending  []*unstructured.Unstructured
	why      []string
	deadline time.Time
	backoff  time.Duration
	stop     context.CancelFunc
}

// resumes reports whether a reconcile of obj, which built digest from revision, continues p.
func (p *parkedRun) resumes(obj *applyv1.Kustomization, revision, digest string) bool {
	at, _ := plumbreconcile.RequestedAt(obj.GetAnnotations())
	return p.generation == obj.Generation && p.revision == revision && p.digest == digest && p.requestedAt == at
}

// parking holds the parked runs by Kustomization.
type parking struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*parkedRun
}

// take removes and returns the parked run of k (nil: none), its waking stopped.
func (p *parking) take(k types.NamespacedName) *parkedRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	run := p.m[k]
	if run != nil {
		delete(p.m, k)
		run.stop()
	}
	return run
}

func (p *parking) put(k types.NamespacedName, run *parkedRun) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[types.NamespacedName]*parkedRun{}
	}
	if old := p.m[k]; old != nil {
		old.stop()
	}
	p.m[k] = run
}

// len is the count of parked runs.
func (p *parking) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// firstParkBackoff is the requeue of a run parked the first time that the watch cannot wake (its
// kind's informer has not synced yet); it doubles at each park up to 2 s. A run the watch wakes
// is requeued after health.ChangedBackoff, a guard against a missed change.
const firstParkBackoff = 100 * time.Millisecond

// wake enqueues a reconcile of the Kustomization key through the wakeups channel, unless ctx
// ends first; it reports whether it did.
func (r *KustomizationReconciler) wake(ctx context.Context, key types.NamespacedName) bool {
	ev := event.GenericEvent{Object: &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
	select {
	case r.wakeups <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// canPark reports whether a run of obj may park its health wait: the reconciler is woken by the
// metadata cache (its controller is set up), the objects are of this cluster, and no
// spec.healthChecks entry names an object the cache may not hold.
func (r *KustomizationReconciler) canPark(obj *applyv1.Kustomization, local bool) bool {
	return r.wakeups != nil && local && r.owned != nil && len(obj.Spec.HealthChecks) == 0
}

// park keeps the run in memory (see above) and returns when to look again.
func (r *KustomizationReconciler) park(ctx context.Context, obj *applyv1.Kustomization, st *runInfo, p *parkedRun, w *healthWait) time.Duration {
	key := client.ObjectKeyFromObject(obj)
	p.generation, p.requestedAt = obj.Generation, ""
	if at, ok := plumbreconcile.RequestedAt(obj.GetAnnotations()); ok {
		p.requestedAt = at
	}
	p.status = *obj.Status.DeepCopy()
	p.info = *st
	p.why = w.why
	// Little is kept of the objects: a resumed run takes them from its own build, the health
	// checks need their names, and the records their metadata.
	p.objs = nil
	p.pending = make([]*unstructured.Unstructured, len(w.pending))
	for i, o := range w.pending {
		p.pending[i] = identity(o)
	}
	p.applied, p.checked = p.applied.metadataOnly(), p.checked.metadataOnly()
	if p.deadline.IsZero() {
		p.deadline, _ = ctx.Deadline()
	}
	maxBackoff := 2 * time.Second
	wake, stopWatching := w.wake, w.stop
	wctx, cancel := context.WithCancel(r.wakeCtx)
	p.stop = cancel
	if wake != nil {
		maxBackoff = health.ChangedBackoff
		go func() {
			defer stopWatching()
			select {
			case <-wake:
			case <-wctx.Done():
				return
			}
			r.wake(wctx, key)
		}()
	}
	switch {
	case wake != nil:
		// Woken by the change: the requeue only guards against a change the watch missed.
		p.backoff = maxBackoff
	case p.backoff == 0:
		p.backoff = firstParkBackoff
	default:
		p.backoff = min(2*p.backoff, maxBackoff)
	}
	st.parked = true
	r.parked.put(key, p)
	return max(min(p.backoff, time.Until(p.deadline)), time.Millisecond)
}

// identity is an object reduced to its identity: apiVersion, kind, namespace, name.
func identity(o *unstructured.Unstructured) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(o.GroupVersionKind())
	u.SetNamespace(o.GetNamespace())
	u.SetName(o.GetName())
	return u
}

// metadataOnly is a copy of o that keeps the metadata of each object (what a record and a
// generation check read) and drops the rest.
func (o *observed) metadataOnly() *observed {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := newObserved()
	for k, u := range o.objects {
		m := &unstructured.Unstructured{Object: map[string]any{"metadata": u.Object["metadata"]}}
		m.SetGroupVersionKind(u.GroupVersionKind())
		out.objects[k] = m
	}
	return out
}
