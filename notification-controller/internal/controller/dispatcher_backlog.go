package controller

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

var (
	foldedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumb_notification_folded_total",
		Help: "Notifications that waited for a slow Provider and went out folded into a digest (the last state of each object) instead of one by one.",
	}, []string{"namespace", "name"})
	droppedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumb_notification_dropped_total",
		Help: "Notifications lost: of a Provider whose digest was full (reason digest_full), or events not matched because the intake was full (reason intake_full, no Provider).",
	}, []string{"namespace", "name", "reason"})
)

// Reasons of plumb_notification_dropped_total.
const (
	dropDigestFull = "digest_full"
	dropIntakeFull = "intake_full"
)

func init() { crmetrics.Registry.MustRegister(foldedTotal, droppedTotal) }

// queue is what waits for a Provider's worker. While the worker delivers, it holds at most
// FoldAt notifications: the one that fills it folds them all into the digest, which the worker
// delivers before what comes after (it folds older notifications). So a Provider that delivers
// slower than its notifications come costs a bounded memory and, once it catches up, one
// message of the last state of each object rather than the whole backlog. What arrives while
// the worker waits for a burst to end (GroupWindow) is not folded: that is grouping's business.
type queue struct {
	mu     sync.Mutex
	items  []notify.Notification
	digest *notify.Digest
	// busy is set while the worker delivers.
	busy bool
	// ready holds a signal when something was pushed.
	ready chan struct{}
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

// push appends n; when foldAt wait for a busy worker, it folds them into the digest and returns
// how many it folded, and how many of the digest's it dropped to make room.
func (q *queue) push(n notify.Notification, foldAt int) (folded, dropped int) {
	q.mu.Lock()
	q.items = append(q.items, n)
	if q.busy && len(q.items) >= foldAt {
		if q.digest == nil {
			q.digest = &notify.Digest{}
		}
		for _, it := range q.items {
			dropped += q.digest.Add(it)
		}
		folded = len(q.items)
		q.items = nil
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return folded, dropped
}

// take returns the digest, if any, and up to max waiting notifications, oldest first; the
// worker is busy with them until done.
func (q *queue) take(max int) (*notify.Digest, []notify.Notification) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.busy = true
	dg := q.digest
	q.digest = nil
	n := min(max, len(q.items))
	batch := append([]notify.Notification(nil), q.items[:n]...)
	q.items = q.items[n:]
	return dg, batch
}

// foldRest folds into the digest, when one formed while the worker delivered, the rest of what
// the worker took (older than the digest's): they go out with it rather than one by one behind a
// slow destination. It returns how many it folded and dropped; none without a digest.
func (q *queue) foldRest(rest []notify.Notification) (folded, dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.digest == nil {
		return 0, 0
	}
	for i := len(rest) - 1; i >= 0; i-- {
		dropped += q.digest.AddOlder(rest[i])
	}
	return len(rest), dropped
}

// done says the worker delivered what it took.
func (q *queue) done() {
	q.mu.Lock()
	q.busy = false
	q.mu.Unlock()
}

// full says whether a digest or max notifications wait.
func (q *queue) full(max int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.digest != nil || len(q.items) >= max
}

func (q *queue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.digest == nil && len(q.items) == 0
}

// backlog is what was folded for a Provider and is not in its status yet.
type backlog struct {
	folded, dropped int64
	at              time.Time
}

// folded counts notifications folded for a Provider: in the metrics at once, in its status at
// the reporter's next write. d.mu is held.
func (d *Dispatcher) folded(ctx context.Context, provider types.NamespacedName, folded, dropped int) {
	foldedTotal.WithLabelValues(provider.Namespace, provider.Name).Add(float64(folded))
	if dropped > 0 {
		droppedTotal.WithLabelValues(provider.Namespace, provider.Name, dropDigestFull).Add(float64(dropped))
	}
	log.FromContext(ctx).Info("provider backed up, notifications folded into a digest", "provider", provider, "folded", folded, "dropped", dropped)
	if d.backlog == nil {
		d.backlog = map[types.NamespacedName]*backlog{}
	}
	b, ok := d.backlog[provider]
	if !ok {
		b = &backlog{}
		d.backlog[provider] = b
	}
	b.folded += int64(folded)
	b.dropped += int64(dropped)
	b.at = time.Now()
	select {
	case d.reports <- struct{}{}:
	default:
	}
}

// report writes what was folded into the Providers' status, at most every ReportEvery: the
// folds of a long backlog add up into one write. It never waits for a delivery.
func (d *Dispatcher) report(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.reports:
		}
		d.mu.Lock()
		pending := d.backlog
		d.backlog = nil
		d.mu.Unlock()
		for key, b := range pending {
			if err := d.recordBacklog(ctx, key, b); err != nil {
				log.FromContext(ctx).Info("could not record folded notifications on the Provider", "provider", key, "error", err.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.ReportEvery):
		}
	}
}

// recordBacklog adds a backlog to a Provider's status. The reporter is the only writer of these
// fields and reads them uncached, so the counts add up; the patch holds them alone.
func (d *Dispatcher) recordBacklog(ctx context.Context, key types.NamespacedName, b *backlog) error {
	p := &notifyv1.Provider{}
	if err := d.APIReader.Get(ctx, key, p); err != nil {
		return client.IgnoreNotFound(err)
	}
	base := p.DeepCopy()
	p.Status.Folded += b.folded
	p.Status.Dropped += b.dropped
	p.Status.LastFoldedTime = &metav1.Time{Time: b.at}
	return d.Client.Status().Patch(ctx, p, client.MergeFrom(base), client.FieldOwner(d.ControllerName))
}
