package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/plumb-dev/plumb/hack/internal/local"
	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// latencySink records, for each line of each notification, the time from the event's creation
// (written into the event's note as t=<unix nanoseconds>) to its delivery.
type latencySink struct {
	delay     time.Duration
	mu        sync.Mutex
	messages  int
	latencies []time.Duration
}

func (s *latencySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n struct{ Message string }
	_ = json.NewDecoder(r.Body).Decode(&n)
	now := time.Now()
	s.mu.Lock()
	s.messages++
	for _, line := range strings.Split(n.Message, "\n") {
		if v, ok := strings.CutPrefix(line, "t="); ok {
			if ns, err := strconv.ParseInt(v, 10, 64); err == nil {
				s.latencies = append(s.latencies, now.Sub(time.Unix(0, ns)))
			}
		}
	}
	s.mu.Unlock()
	time.Sleep(s.delay) // a slow chat service
}

func (s *latencySink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages
}

// benchNotify: events events across objects objects, matched by one Alert per Provider (an Alert
// names one Provider: providers > 1 fans the same events out), each Provider to a sink of its
// own that answers after delay; event-to-delivery latency over every delivery, messages,
// notifications folded into digests and peak RSS of notification-controller.
func benchNotify(ctx context.Context, events, objects, providers int, delay time.Duration) ([]Metric, error) {
	bed, err := local.StartBed("plumb-bench-notify-", false)
	if err != nil {
		return nil, err
	}
	defer bed.Stop()
	c := bed.Env.Client
	p, err := bed.StartController("notification-controller", "--dedup-window=0", "--provider-allow-cidr=127.0.0.1/32")
	if err != nil {
		return nil, err
	}
	ns := "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	sinks := make([]*latencySink, providers)
	for i := range sinks {
		sinks[i] = &latencySink{delay: delay}
		srv := httptest.NewServer(sinks[i])
		defer srv.Close()
		name := fmt.Sprintf("chat-%d", i)
		if err := c.Create(ctx, &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL}}); err != nil {
			return nil, err
		}
		if err := c.Create(ctx, &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: name}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}}); err != nil {
			return nil, err
		}
	}
	// Wait for the Alerts to be Ready (their reconciles prove the controller is up).
	deadline := time.Now().Add(time.Minute)
	for i := range providers {
		alert := &notifyv1.Alert{}
		for !ready(alert.Status.Conditions) {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("alert not ready")
			}
			time.Sleep(100 * time.Millisecond)
			if err := c.Get(ctx, clientKey(ns, fmt.Sprintf("chat-%d", i)), alert); err != nil {
				return nil, err
			}
		}
	}
	// A probe event, delivered, proves the event watch is running; it is not counted.
	probe := func(i int) error {
		return c.Create(ctx, &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{GenerateName: "probe-", Namespace: ns},
			EventTime:           metav1.NowMicro(),
			ReportingController: "apply-controller", ReportingInstance: "bench", Action: "Reconcile",
			Reason: "Probe", Type: "Normal", Note: fmt.Sprintf("probe %d", i),
			Regarding: corev1.ObjectReference{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Namespace: ns, Name: "probe"},
		})
	}
	probed := func() bool {
		for _, s := range sinks {
			if s.count() == 0 {
				return false
			}
		}
		return true
	}
	for i := 0; !probed(); i++ {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no probe event delivered")
		}
		if err := probe(i); err != nil {
			return nil, err
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, s := range sinks {
		s.mu.Lock()
		s.messages = 0
		s.mu.Unlock()
	}
	delivered := func() int {
		n := 0
		for _, s := range sinks {
			s.mu.Lock()
			n += len(s.latencies)
			s.mu.Unlock()
		}
		return n
	}

	begin := time.Now()
	for i := range events {
		obj := fmt.Sprintf("app-%04d", i%objects)
		ev := &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{GenerateName: obj + "-", Namespace: ns},
			EventTime:           metav1.NowMicro(),
			ReportingController: "apply-controller", ReportingInstance: "bench", Action: "Reconcile",
			Reason: "Succeeded", Type: "Normal", Note: fmt.Sprintf("t=%d", time.Now().UnixNano()),
			Regarding: corev1.ObjectReference{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Namespace: ns, Name: obj},
		}
		if err := c.Create(ctx, ev); err != nil {
			return nil, err
		}
	}
	created := time.Since(begin)
	// Delivered or dropped: wait until nothing arrives for a while.
	last, lastCount := time.Now(), -1
	for time.Since(last) < 5*time.Second {
		time.Sleep(250 * time.Millisecond)
		if n := delivered(); n != lastCount {
			last, lastCount = time.Now(), n
		}
	}
	rss, _ := p.PeakRSS()
	var lat []time.Duration
	messages := 0
	for _, s := range sinks {
		s.mu.Lock()
		lat = append(lat, s.latencies...)
		messages += s.messages
		s.mu.Unlock()
	}
	// What waited for a slow sink went out folded into digests: the Providers count it.
	var folded, dropped int64
	var list notifyv1.ProviderList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	for _, pr := range list.Items {
		folded += pr.Status.Folded
		dropped += pr.Status.Dropped
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))]
	}
	var f figures
	f.add("events_created", fmt.Sprintf("%d events created (by the benchmark, through the API server)", events), created.Seconds(), 2, "s", Lower)
	deliveredLabel := "events delivered"
	if providers > 1 {
		deliveredLabel = fmt.Sprintf("events delivered (to all %d Providers)", providers)
	}
	f.add("events_delivered", deliveredLabel, float64(len(lat)), 0, "count", Higher)
	f.add("messages_sent", "messages sent (after grouping)", float64(messages), 0, "count", Lower)
	f.add("events_folded", "events folded into digests (Providers' status.folded)", float64(folded), 0, "count", Lower)
	f.add("events_dropped", "events dropped from full digests (Providers' status.dropped)", float64(dropped), 0, "count", Lower)
	f.add("latency_p50", "event-to-delivery latency p50", float64(pct(0.5).Microseconds())/1000, 1, "ms", Lower)
	f.add("latency_p99", "event-to-delivery latency p99", float64(pct(0.99).Microseconds())/1000, 1, "ms", Lower)
	f.add("peak_rss", "notification-controller peak RSS", rss, 1, "MiB", Lower)
	writeTable(os.Stdout, fmt.Sprintf("notify: %d events across %d objects, %d Provider(s) with an Alert each, sinks answering after %s (%d CPUs, %s)", events, objects, providers, delay, runtime.NumCPU(), runtime.GOARCH), f)
	return f, nil
}
