package controller

import (
	"context"
	"errors"
	"path"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
	"github.com/plumb-dev/plumb/shared/events"
)

// Dispatcher watches Kubernetes Events, matches them with Alerts and hands them to one worker
// per Provider: the watch never waits for a delivery. Each worker has a bounded queue (events
// beyond it are dropped and logged) and retries 5xx, 429 (after Retry-After) and network errors
// with backoff; a delivery that still fails marks the Provider Ready=False with the error.
type Dispatcher struct {
	Client    client.Client
	APIReader client.Reader
	Cache     cache.Cache
	// ControllerName is this controller's: its own events are never sent (no loops).
	ControllerName string
	// QueueSize bounds each Provider's queue (default 1000); Backoff is the first retry wait
	// (default 1 s, doubled up to 3 retries).
	QueueSize int
	Backoff   time.Duration
	// DedupWindow drops an event equal (object, reason, message, revision) to one an Alert sent
	// within it (default 0: none).
	DedupWindow time.Duration
	// GroupWindow is how long a worker waits after a notification for more of the same burst
	// (same object and revision) to send as one message (default 50 ms).
	GroupWindow time.Duration

	start   time.Time
	states  notify.States
	seen    sync.Map // dedup key → time sent
	checks  atomic.Uint64
	intake  chan *eventsv1.Event
	mu      sync.Mutex
	workers map[types.NamespacedName]chan notify.Notification
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
	// The watch's handler only hands events over: matching (which may read an object's
	// labels) runs in its own goroutine, so a slow read never holds up the watch.
	d.intake = make(chan *eventsv1.Event, d.QueueSize)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-d.intake:
				d.handle(ctx, ev)
			}
		}
	}()
	inf, err := d.Cache.GetInformer(ctx, &eventsv1.Event{})
	if err != nil {
		return err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			ev, ok := obj.(*eventsv1.Event)
			if !ok {
				return
			}
			select {
			case d.intake <- ev:
			default:
				log.FromContext(ctx).Info("event intake full, event dropped", "object", ev.Regarding.Kind+"/"+ev.Regarding.Namespace+"/"+ev.Regarding.Name)
			}
		},
	}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// handle matches one event with the Alerts and queues its notifications.
func (d *Dispatcher) handle(ctx context.Context, ev *eventsv1.Event) {
	// The informer's first list replays old events; only new ones are sent.
	if ev.CreationTimestamp.Time.Before(d.start.Add(-time.Second)) || ev.ReportingController == d.ControllerName {
		return
	}
	var alerts notifyv1.AlertList
	if err := d.Client.List(ctx, &alerts); err != nil {
		log.FromContext(ctx).Error(err, "listing Alerts")
		return
	}
	for i := range alerts.Items {
		a := &alerts.Items[i]
		if a.Spec.Suspend || !d.matches(ctx, a, ev) {
			continue
		}
		var after time.Duration
		if a.Spec.AlertAfter != nil {
			after = a.Spec.AlertAfter.Duration
		}
		key := a.Namespace + "/" + a.Name + "|" + ev.Regarding.Kind + "/" + ev.Regarding.Namespace + "/" + ev.Regarding.Name
		if d.duplicate(key + "|" + ev.Reason + "|" + ev.Note + "|" + ev.Annotations[events.RevisionAnnotation]) {
			continue
		}
		if !d.states.Decide(key, ev.Type == "Warning", time.Now(), a.Spec.NotifyOn, after) {
			continue
		}
		n := notify.Notification{
			Kind: ev.Regarding.Kind, Namespace: ev.Regarding.Namespace, Name: ev.Regarding.Name,
			Severity: "info", Reason: ev.Reason, Message: ev.Note, Revision: ev.Annotations[events.RevisionAnnotation],
			Controller: ev.ReportingController, Summary: a.Spec.Summary, Metadata: a.Spec.EventMetadata, Time: ev.CreationTimestamp.UTC(),
		}
		if ev.Type == "Warning" {
			n.Severity = "error"
		}
		d.enqueue(ctx, types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.ProviderRef.Name}, n)
	}
}

// duplicate says whether an equal event was sent within DedupWindow, and remembers this one.
func (d *Dispatcher) duplicate(key string) bool {
	if d.DedupWindow <= 0 {
		return false
	}
	now := time.Now()
	if last, ok := d.seen.Load(key); ok && now.Sub(last.(time.Time)) < d.DedupWindow {
		return true
	}
	d.seen.Store(key, now)
	// Forget what is older than the window every 256 events, so that the map stays small.
	if d.checks.Add(1)%256 == 0 {
		d.seen.Range(func(k, v any) bool {
			if now.Sub(v.(time.Time)) >= d.DedupWindow {
				d.seen.Delete(k)
			}
			return true
		})
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
	source := false
	for _, s := range a.Spec.EventSources {
		ns := s.Namespace
		if ns == "" {
			ns = a.Namespace
		}
		if !strings.EqualFold(s.Kind, reg.Kind) || (ns != "*" && ns != reg.Namespace) {
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
	if len(a.Spec.InclusionList) > 0 && !anyMatch(a.Spec.InclusionList, ev.Note) {
		return false
	}
	return !anyMatch(a.Spec.ExclusionList, ev.Note)
}

func anyMatch(exprs []string, s string) bool {
	for _, e := range exprs {
		if re, err := regexp.Compile(e); err == nil && re.MatchString(s) {
			return true
		}
	}
	return false
}

// enqueue hands a notification to its Provider's worker, starting it on first use.
func (d *Dispatcher) enqueue(ctx context.Context, provider types.NamespacedName, n notify.Notification) {
	d.mu.Lock()
	if d.workers == nil {
		d.workers = map[types.NamespacedName]chan notify.Notification{}
	}
	ch, ok := d.workers[provider]
	if !ok {
		ch = make(chan notify.Notification, d.QueueSize)
		d.workers[provider] = ch
		go d.work(ctx, provider, ch)
	}
	d.mu.Unlock()
	select {
	case ch <- n:
	default:
		log.FromContext(ctx).Info("provider queue full, notification dropped", "provider", provider, "object", n.Title())
	}
}

// work delivers a Provider's notifications in order, with retries; a burst about one object
// and revision (what arrives within GroupWindow) goes as one message.
func (d *Dispatcher) work(ctx context.Context, key types.NamespacedName, ch chan notify.Notification) {
	for {
		var batch []notify.Notification
		select {
		case <-ctx.Done():
			return
		case n := <-ch:
			batch = append(batch, n)
		}
		window := time.NewTimer(d.GroupWindow)
	collect:
		for len(batch) < 100 {
			select {
			case <-ctx.Done():
				window.Stop()
				return
			case n := <-ch:
				batch = append(batch, n)
			case <-window.C:
				break collect
			}
		}
		window.Stop()
		for _, n := range notify.Group(batch) {
			d.deliver(ctx, key, n)
		}
	}
}

func (d *Dispatcher) deliver(ctx context.Context, key types.NamespacedName, n notify.Notification) {
	p := &notifyv1.Provider{}
	if err := d.Client.Get(ctx, key, p); err != nil || p.Spec.Suspend {
		return
	}
	sender, err := SenderFor(ctx, d.APIReader, p)
	if err != nil {
		d.providerStatus(ctx, p, err)
		return
	}
	wait := d.Backoff
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.GetTimeout())
		err = sender.Send(actx, n)
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
	d.providerStatus(ctx, p, err)
}

// providerStatus shows the outcome of the last delivery on the Provider, when it changes.
func (d *Dispatcher) providerStatus(ctx context.Context, p *notifyv1.Provider, err error) {
	ready := conditions.IsReady(p)
	switch {
	case err == nil && ready:
		return
	case err == nil:
		conditions.MarkTrue(p, meta.ReadyCondition, SucceededReason, "%s provider ready; last delivery succeeded", p.Spec.Type)
	default:
		log.FromContext(ctx).Info("delivery failed", "provider", client.ObjectKeyFromObject(p), "error", err.Error())
		if !ready && conditions.GetMessage(p, meta.ReadyCondition) == "delivery failed: "+err.Error() {
			return
		}
		conditions.MarkFalse(p, meta.ReadyCondition, DeliveryFailedReason, "delivery failed: %v", err)
	}
	if uerr := d.Client.Status().Update(ctx, p); uerr != nil {
		log.FromContext(ctx).Info("could not record the delivery on the Provider", "error", uerr.Error())
	}
}
