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

// benchNotify: events events across objects objects into one Alert, to a sink that answers
// after delay; event-to-delivery latency, messages, drops and peak RSS of notification-controller.
func benchNotify(ctx context.Context, events, objects int, delay time.Duration) ([]Metric, error) {
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
	sink := &latencySink{delay: delay}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	ns := "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	if err := c.Create(ctx, &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL}}); err != nil {
		return nil, err
	}
	alert := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: ns},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}}
	if err := c.Create(ctx, alert); err != nil {
		return nil, err
	}
	// Wait for the Alert to be Ready (its reconcile proves the controller is up).
	deadline := time.Now().Add(time.Minute)
	for !ready(alert.Status.Conditions) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("alert not ready")
		}
		time.Sleep(100 * time.Millisecond)
		if err := c.Get(ctx, clientKey(ns, "all"), alert); err != nil {
			return nil, err
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
	for i := 0; sink.count() == 0; i++ {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no probe event delivered")
		}
		if err := probe(i); err != nil {
			return nil, err
		}
		time.Sleep(200 * time.Millisecond)
	}
	sink.mu.Lock()
	sink.messages = 0
	sink.mu.Unlock()

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
		sink.mu.Lock()
		n := len(sink.latencies)
		sink.mu.Unlock()
		if n != lastCount {
			last, lastCount = time.Now(), n
		}
	}
	rss, _ := p.PeakRSS()
	sink.mu.Lock()
	lat := append([]time.Duration(nil), sink.latencies...)
	messages := sink.messages
	sink.mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))]
	}
	var f figures
	f.add("events_created", fmt.Sprintf("%d events created (by the benchmark, through the API server)", events), created.Seconds(), 2, "s", Lower)
	f.add("events_delivered", "events delivered", float64(len(lat)), 0, "count", Higher)
	f.add("messages_sent", "messages sent (after grouping)", float64(messages), 0, "count", Lower)
	f.add("latency_p50", "event-to-delivery latency p50", float64(pct(0.5).Microseconds())/1000, 1, "ms", Lower)
	f.add("latency_p99", "event-to-delivery latency p99", float64(pct(0.99).Microseconds())/1000, 1, "ms", Lower)
	f.add("peak_rss", "notification-controller peak RSS", rss, 1, "MiB", Lower)
	writeTable(os.Stdout, fmt.Sprintf("notify: %d events across %d objects, one Alert, sink answering after %s (%d CPUs, %s)", events, objects, delay, runtime.NumCPU(), runtime.GOARCH), f)
	return f, nil
}
