package controller

import (
	"context"
	"errors"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	toolscache "k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
	"github.com/plumb-dev/plumb/shared/events"
)

// Dispatcher watches Kubernetes Events, matches them with Alerts and hands them to one worker
// per Provider: the watch never waits for a delivery, and a slow Provider slows no other. Each
// worker retries 5xx, 429 (after Retry-After) and network errors with backoff; a delivery that
// still fails marks the Provider Ready=False with the error. A Provider slower than its
// notifications come sees its queue fill: past FoldAt the waiting notifications are folded into
// one digest (see queue), counted in the Provider's status and in
// plumb_notification_folded_total, never dropped silently.
type Dispatcher struct {
	Client    client.Client
	APIReader client.Reader
	// Events lists and watches events.k8s.io Events of every namespace. The watch keeps no
	// store: the controller's memory does not grow with the cluster's events.
	Events eventsv1client.EventsV1Interface
	// ControllerName is this controller's: its own events are never sent (no loops).
	ControllerName string
	// NoCrossNamespaceRefs matches an Alert only with events about objects of its own namespace,
	// whatever its sources say (the AlertReconciler also stalls an Alert that names another).
	NoCrossNamespaceRefs bool
	// QueueSize bounds the intake of events waiting to be matched (default 1000; beyond it
	// events are dropped, logged and counted); Backoff is the first retry wait (default 1 s,
	// doubled up to 3 retries).
	QueueSize int
	Backoff   time.Duration
	// FoldAt is how many notifications may wait for a Provider before they are folded into a
	// digest (default 100).
	FoldAt int
	// ReportEvery bounds how often a Provider's status is written with what was folded
	// (default 1 s).
	ReportEvery time.Duration
	// DedupWindow drops an event equal (object, reason, message, revision) to one an Alert sent
	// within it (default 0: none).
	DedupWindow time.Duration
	// GroupWindow is how long a worker waits after a notification for more of the same burst
	// (same object and revision) to send as one message (default 50 ms).
	GroupWindow time.Duration
	// IdleWorker ends a Provider's worker that had nothing to send for this long (default
	// 5 min): deleted Providers leave nothing running.
	IdleWorker time.Duration
	// Senders are the controller-wide rules of deliveries (address policy, plain HTTP).
	Senders SenderOptions

	start  time.Time
	states notify.States
	intake chan occurrence
	dues   chan due

	// Owned by the matching goroutine.
	seen     map[string]time.Time // dedup key → time sent
	matchers map[types.UID]*matcher

	mu      sync.Mutex
	workers map[types.NamespacedName]*queue
	// backlog is what was folded per Provider and is not yet in its status; reports asks the
	// reporter to write it.
	backlog map[types.NamespacedName]*backlog
	reports chan struct{}
}

// occurrence is an event that happened at a time: a new Event, or a repeat of one (the events
// API counts repeats in the Event's series instead of making new Events).
type occurrence struct {
	ev *eventsv1.Event
	at time.Time
}

// due asks to check, once alertAfter has passed, whether a failure that fell silent is to be
// sent.
type due struct {
	key      string
	provider types.NamespacedName
	n        notify.Notification
	after    time.Duration
}

// Start runs until ctx ends (a manager Runnable; only the leader dispatches).
func (d *Dispatcher) Start(ctx context.Context) error {
	d.start = time.Now()
	if d.QueueSize == 0 {
		d.QueueSize = 1000
	}
	if d.Backoff == 0 {
		d.Backoff = time.Second
	}
	if d.GroupWindow == 0 {
		d.GroupWindow = 50 * time.Millisecond
	}
	if d.IdleWorker == 0 {
		d.IdleWorker = 5 * time.Minute
	}
	if d.FoldAt == 0 {
		d.FoldAt = 100
	}
	if d.ReportEvery == 0 {
		d.ReportEvery = time.Second
	}
	d.intake = make(chan occurrence, d.QueueSize)
	d.dues = make(chan due, 64)
	d.reports = make(chan struct{}, 1)
	d.seen, d.matchers = map[string]time.Time{}, map[types.UID]*matcher{}
	// The watch only hands events over: matching (which may read an object's labels) runs in
	// its own goroutine, so a slow read never holds up the watch.
	go d.match(ctx)
	go d.report(ctx)
	for ctx.Err() == nil {
		if err := d.watch(ctx); err != nil && ctx.Err() == nil {
			log.FromContext(ctx).Info("watch of events ended; starting again", "error", err.Error())
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// watch follows the Events made from now on, until the watch ends (it resumes after network
// errors by itself; an expired resource version ends it).
func (d *Dispatcher) watch(ctx context.Context) error {
	// A list of one item gives the current resource version without reading every Event.
	list, err := d.Events.Events("").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	w, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, &toolscache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return d.Events.Events("").Watch(ctx, o)
		},
	})
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.ResultChan():
			if !ok {
				return errors.New("watch closed")
			}
			switch e.Type {
			case watch.Error:
				return apierrors.FromObject(e.Object)
			case watch.Added:
				if ev, ok := e.Object.(*eventsv1.Event); ok {
					d.take(ctx, ev, eventTime(ev))
				}
			case watch.Modified:
				// An Event changes only when it repeats: its series counts the repeats.
				if ev, ok := e.Object.(*eventsv1.Event); ok && ev.Series != nil {
					d.take(ctx, ev, ev.Series.LastObservedTime.Time)
				}
			}
		}
	}
}

func eventTime(ev *eventsv1.Event) time.Time {
	if !ev.EventTime.IsZero() {
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

// take hands an occurrence to the matching goroutine, or drops it when the intake is full.
func (d *Dispatcher) take(ctx context.Context, ev *eventsv1.Event, at time.Time) {
	if ev.ReportingController == d.ControllerName || at.Before(d.start.Add(-time.Second)) {
		return
	}
	select {
	case d.intake <- occurrence{ev: ev, at: at}:
	default:
		droppedTotal.WithLabelValues("", "", dropIntakeFull).Inc()
		log.FromContext(ctx).Info("event intake full, event dropped", "object", ev.Regarding.Kind+"/"+ev.Regarding.Namespace+"/"+ev.Regarding.Name)
	}
}

// match matches occurrences with Alerts, sends the failures that are due, and forgets old
// state every minute.
func (d *Dispatcher) match(ctx context.Context) {
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-d.intake:
			d.handle(ctx, o)
		case du := <-d.dues:
			if d.states.Due(du.key, du.n.Reason, time.Now(), du.after) {
				d.enqueue(ctx, du.provider, du.n)
			}
		case now := <-sweep.C:
			d.sweep(ctx, now)
		}
	}
}

// sweep forgets what no longer matters: dedup entries past the window, objects not heard of
// for two hours, and the expressions of deleted Alerts.
func (d *Dispatcher) sweep(ctx context.Context, now time.Time) {
	for k, t := range d.seen {
		if now.Sub(t) >= d.DedupWindow {
			delete(d.seen, k)
		}
	}
	d.states.Sweep(now.Add(-2 * time.Hour))
	var alerts notifyv1.AlertList
	if err := d.Client.List(ctx, &alerts); err != nil {
		return
	}
	live := map[types.UID]bool{}
	for i := range alerts.Items {
		live[alerts.Items[i].UID] = true
	}
	for uid := range d.matchers {
		if !live[uid] {
			delete(d.matchers, uid)
		}
	}
}

// handle matches one occurrence with the Alerts and queues its notifications.
func (d *Dispatcher) handle(ctx context.Context, o occurrence) {
	ev := o.ev
	var alerts notifyv1.AlertList
	if err := d.Client.List(ctx, &alerts); err != nil {
		log.FromContext(ctx).Error(err, "listing Alerts")
		return
	}
	for i := range alerts.Items {
		a := &alerts.Items[i]
		// A stalled Alert has an expression or glob that does not compile.
		if a.Spec.Suspend || conditions.IsStalled(a) || !d.matches(ctx, a, ev) {
			continue
		}
		var after time.Duration
		if a.Spec.AlertAfter != nil {
			after = a.Spec.AlertAfter.Duration
		}
		key := a.Namespace + "/" + a.Name + "|" + ev.Regarding.Kind + "/" + ev.Regarding.Namespace + "/" + ev.Regarding.Name
		if d.duplicate(key+"|"+ev.Reason+"|"+ev.Note+"|"+ev.Annotations[events.RevisionAnnotation], o.at) {
			continue
		}
		n := notify.Notification{
			Kind: ev.Regarding.Kind, Namespace: ev.Regarding.Namespace, Name: ev.Regarding.Name,
			Severity: "info", Reason: ev.Reason, Message: ev.Note, Revision: ev.Annotations[events.RevisionAnnotation],
			Controller: ev.ReportingController, Summary: a.Spec.Summary, Metadata: a.Spec.EventMetadata, Time: o.at.UTC(),
			APIVersion: ev.Regarding.APIVersion, Alert: alertContent(a),
		}
		if ev.Type == "Warning" {
			n.Severity = "error"
		}
		provider := types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.ProviderRef.Name}
		decision := d.states.Decide(key, ev.Type == "Warning", ev.Reason, o.at, a.Spec.NotifyOn, after)
		if decision.CheckIn > 0 {
			du := due{key: key, provider: provider, n: n, after: after}
			time.AfterFunc(decision.CheckIn, func() {
				select {
				case d.dues <- du:
				case <-ctx.Done():
				}
			})
		}
		if decision.Send {
			n.Recovers = decision.Recovers
			d.enqueue(ctx, provider, n)
		}
	}
}

// duplicate says whether an equal event was sent within DedupWindow, and remembers this one.
func (d *Dispatcher) duplicate(key string, at time.Time) bool {
	if d.DedupWindow <= 0 {
		return false
	}
	if last, ok := d.seen[key]; ok && at.Sub(last) < d.DedupWindow {
		return true
	}
	d.seen[key] = at
	return false
}

// matcher holds an Alert's compiled expressions, for its generation.
type matcher struct {
	generation       int64
	include, exclude []*regexp.Regexp
}

func (d *Dispatcher) matcherOf(a *notifyv1.Alert) *matcher {
	if m, ok := d.matchers[a.UID]; ok && m.generation == a.Generation {
		return m
	}
	m := &matcher{generation: a.Generation, include: compileAll(a.Spec.InclusionList), exclude: compileAll(a.Spec.ExclusionList)}
	d.matchers[a.UID] = m
	return m
}

func compileAll(exprs []string) []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, e := range exprs {
		if re, err := regexp.Compile(e); err == nil {
			out = append(out, re)
		}
	}
	return out
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// matches applies an Alert's sources, severity and expressions to an event.
func (d *Dispatcher) matches(ctx context.Context, a *notifyv1.Alert, ev *eventsv1.Event) bool {
	// With notifyOn, successes are needed to see recoveries: severity is notifyOn's business.
	if a.Spec.EventSeverity == "error" && ev.Type != "Warning" && len(a.Spec.NotifyOn) == 0 {
		return false
	}
	reg := ev.Regarding
	if d.NoCrossNamespaceRefs && reg.Namespace != a.Namespace {
		return false
	}
	source := false
	for _, s := range a.Spec.EventSources {
		ns := s.Namespace
		if ns == "" {
			ns = a.Namespace
		}
		if !strings.EqualFold(s.Kind, reg.Kind) || (ns != "*" && ns != reg.Namespace) ||
			(s.APIVersion != "" && s.APIVersion != reg.APIVersion) {
			continue
		}
		if s.Name != "" && s.Name != "*" {
			if ok, _ := path.Match(s.Name, reg.Name); !ok {
				continue
			}
		}
		if len(s.MatchLabels) > 0 {
			u := &unstructured.Unstructured{}
			u.SetAPIVersion(reg.APIVersion)
			u.SetKind(reg.Kind)
			if err := d.APIReader.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: reg.Name}, u); err != nil ||
				!labels.SelectorFromSet(s.MatchLabels).Matches(labels.Set(u.GetLabels())) {
				continue
			}
		}
		source = true
		break
	}
	if !source {
		return false
	}
	m := d.matcherOf(a)
	if len(a.Spec.InclusionList) > 0 && !anyMatch(m.include, ev.Note) {
		return false
	}
	return !anyMatch(m.exclude, ev.Note)
}

// enqueue hands a notification to its Provider's worker, starting it on first use.
func (d *Dispatcher) enqueue(ctx context.Context, provider types.NamespacedName, n notify.Notification) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.workers == nil {
		d.workers = map[types.NamespacedName]*queue{}
	}
	q, ok := d.workers[provider]
	if !ok {
		q = newQueue()
		d.workers[provider] = q
		w := &worker{d: d, key: provider, q: q}
		go w.run(ctx)
	}
	// Pushed under the lock: a worker ends only with an empty queue, under the same lock.
	folded, dropped := q.push(n, d.FoldAt)
	if folded > 0 {
		d.folded(ctx, provider, folded, dropped)
	}
}

// worker delivers one Provider's notifications in order.
type worker struct {
	d   *Dispatcher
	key types.NamespacedName
	q   *queue

	// The Provider's Sender is kept for a minute (its Secret is read once per sender), and made
	// again when the Provider's spec changes or a delivery fails (a rotated Secret, say).
	sender     notify.Sender
	generation int64
	made       time.Time
}

// senderTTL bounds how long a Sender is used before its Secret is read again.
const senderTTL = time.Minute

// maxBatch bounds the notifications taken at once, to group.
const maxBatch = 100

// run delivers with retries: a digest first (what it folds came before what waits now), then
// the waiting notifications, a burst about one object and revision (what arrives within
// GroupWindow) as one message. It ends after IdleWorker without work.
func (w *worker) run(ctx context.Context) {
	d := w.d
	idle := time.NewTimer(d.IdleWorker)
	defer idle.Stop()
	for {
		if w.q.empty() {
			select {
			case <-ctx.Done():
				return
			case <-idle.C:
				d.mu.Lock()
				if w.q.empty() {
					delete(d.workers, w.key)
					d.mu.Unlock()
					return
				}
				d.mu.Unlock()
				idle.Reset(d.IdleWorker)
				continue
			case <-w.q.ready:
			}
		}
		// More of the burst may come, unless a whole batch (or a digest) already waits.
		if !w.q.full(maxBatch) {
			window := time.NewTimer(d.GroupWindow)
			select {
			case <-ctx.Done():
				window.Stop()
				return
			case <-window.C:
			}
		}
		digest, batch := w.q.take(maxBatch)
		if digest != nil {
			w.deliverDigest(ctx, digest)
		}
		msgs := notify.Group(batch)
		for i, n := range msgs {
			if i > 0 {
				if folded, dropped := w.q.foldRest(msgs[i:]); folded > 0 {
					d.mu.Lock()
					d.folded(ctx, w.key, folded, dropped)
					d.mu.Unlock()
					break
				}
			}
			w.deliver(ctx, n)
		}
		w.q.done()
		idle.Reset(d.IdleWorker)
	}
}

// digestMessages are what a digest becomes for a Provider of a type.
func digestMessages(typ string, provider types.NamespacedName, dg *notify.Digest) []notify.Notification {
	if providerTypes[typ].perObject {
		return dg.Last()
	}
	n := dg.Notification(notifyv1.ProviderKind, provider.Namespace, provider.Name)
	n.APIVersion = notifyv1.GroupVersion.String()
	return []notify.Notification{n}
}

func (w *worker) deliverDigest(ctx context.Context, dg *notify.Digest) {
	p := &notifyv1.Provider{}
	if err := w.d.Client.Get(ctx, w.key, p); err != nil {
		return
	}
	for _, n := range digestMessages(p.Spec.Type, w.key, dg) {
		w.deliver(ctx, n)
	}
}

func (w *worker) deliver(ctx context.Context, n notify.Notification) {
	d := w.d
	p := &notifyv1.Provider{}
	if err := d.Client.Get(ctx, w.key, p); err != nil || p.Spec.Suspend {
		return
	}
	if w.sender == nil || w.generation != p.Generation || time.Since(w.made) > senderTTL {
		s, err := SenderFor(ctx, d.APIReader, p, d.Senders)
		if err != nil {
			w.sender = nil
			d.providerStatus(ctx, p, err)
			return
		}
		w.sender, w.generation, w.made = s, p.Generation, time.Now()
	}
	wait := d.Backoff
	var err error
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.GetTimeout())
		err = w.sender.Send(actx, n)
		cancel()
		var re *notify.RetryableError
		if err == nil || !errors.As(err, &re) || attempt == 3 {
			break
		}
		if re.RetryAfter > 0 {
			wait = re.RetryAfter
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	if err != nil {
		w.sender = nil
	}
	d.providerStatus(ctx, p, err)
}

// providerStatus shows the outcome of the last delivery on the Provider, when it changes. The
// patch owns the Ready condition only, as the ProviderReconciler's does.
func (d *Dispatcher) providerStatus(ctx context.Context, p *notifyv1.Provider, err error) {
	ready := conditions.IsReady(p)
	patcher := patch.NewSerialPatcher(p, d.Client)
	switch {
	case err == nil && ready:
		return
	case err == nil:
		conditions.MarkTrue(p, meta.ReadyCondition, notifyv1.SucceededReason, "%s provider ready; last delivery succeeded", p.Spec.Type)
	default:
		log.FromContext(ctx).Info("delivery failed", "provider", client.ObjectKeyFromObject(p), "error", err.Error())
		if !ready && conditions.GetMessage(p, meta.ReadyCondition) == "delivery failed: "+err.Error() {
			return
		}
		conditions.MarkFalse(p, meta.ReadyCondition, deliveryReason(err), "delivery failed: %v", err)
	}
	if perr := patcher.Patch(ctx, p, patch.WithOwnedConditions{Conditions: []string{meta.ReadyCondition}}, patch.WithFieldOwner(d.ControllerName)); perr != nil {
		log.FromContext(ctx).Info("could not record the delivery on the Provider", "error", perr.Error())
	}
}

// alertContent is an Alert as unstructured content, for a Provider's commitStatusExpr.
func alertContent(a *notifyv1.Alert) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
	if err != nil {
		return nil
	}
	return m
}
