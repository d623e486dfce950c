package controller

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

// blockingSink is a destination that takes each notification and answers only when the test
// releases it.
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	got     []notify.Notification
}

func (s *blockingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n notify.Notification
	_ = json.NewDecoder(r.Body).Decode(&n)
	s.mu.Lock()
	s.got = append(s.got, n)
	s.mu.Unlock()
	select {
	case <-s.release:
	case <-r.Context().Done():
	}
}

func (s *blockingSink) received() []notify.Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notify.Notification(nil), s.got...)
}

// counterValue reads a counter of controller-runtime's registry.
func counterValue(g Gomega, name string, labels map[string]string) float64 {
	families, err := crmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// A Provider whose destination stops answering folds what waits for it into one digest (the last
// state of each object), counted in its status and a metric, while another Provider of the same
// events delivers them all at once.
func TestDispatcher_SlowProviderFoldsIntoADigest(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := namespace(g, "backlog-")
	slow := &blockingSink{release: make(chan struct{})}
	released := false
	defer func() {
		if !released {
			close(slow.release)
		}
	}()
	slowSrv := httptest.NewServer(slow)
	defer slowSrv.Close()
	fast := &chatSink{}
	fastSrv := httptest.NewServer(fast)
	defer fastSrv.Close()

	// Providers of this test's own dispatcher (the suite's leaves them alone).
	own := map[string]string{ownStackLabel: "true"}
	for _, o := range []client.Object{
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "slow", Namespace: ns, Labels: own},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: slowSrv.URL, Timeout: &metav1.Duration{Duration: 5 * time.Minute}}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "fast", Namespace: ns, Labels: own},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: fastSrv.URL}},
		&notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "slow", Namespace: ns},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "slow"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "app-*"}}}},
		&notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "fast", Namespace: ns},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "fast"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}},
	} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	d := &Dispatcher{Client: k8s, APIReader: k8s, Events: kubernetes.NewForConfigOrDie(env.Config).EventsV1(),
		// A burst of this test's events fits in one group window: the fast Provider takes them at
		// once, and never has FoldAt waiting while it delivers.
		ControllerName: "notification-controller", Backoff: 50 * time.Millisecond, GroupWindow: 500 * time.Millisecond,
		FoldAt: 6, ReportEvery: 50 * time.Millisecond,
		Senders: SenderOptions{Addresses: &notify.AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}}
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	defer func() { cancel(); <-done }()

	// Probes (of an object only the fast Provider hears of) until the watch has them.
	g.Eventually(func(g Gomega) {
		event(NewWithT(t), ns, "probe", "Normal", "Probe", "probe")
		g.Expect(fast.received()).NotTo(BeEmpty())
	}, timeout, 200*time.Millisecond).Should(Succeed())
	// The slow destination takes a first notification and holds it.
	event(g, ns, "app-first", "Normal", "Succeeded", "first")
	g.Eventually(slow.received, timeout, 20*time.Millisecond).Should(HaveLen(1))

	// Fourteen more wait: the sixth and the twelfth fold what waits; the last two wait as they
	// are.
	steps := [][4]string{
		{"app-a", "Normal", "Progressing", "a1"}, {"app-b", "Normal", "Progressing", "b1"},
		{"app-c", "Warning", "HealthCheckFailed", "c1"}, {"app-a", "Warning", "BuildFailed", "a2"},
		{"app-b", "Normal", "Succeeded", "b2"}, {"app-c", "Normal", "Succeeded", "c2"},
		{"app-a", "Normal", "Progressing", "a3"}, {"app-b", "Warning", "ApplyFailed", "b3"},
		{"app-d", "Normal", "Succeeded", "d1"}, {"app-c", "Warning", "HealthCheckFailed", "c3"},
		{"app-a", "Normal", "Succeeded", "a4"}, {"app-d", "Normal", "Succeeded", "d2"},
		{"app-a", "Normal", "Succeeded", "a5"}, {"app-e", "Normal", "Succeeded", "e1"},
	}
	for _, s := range steps {
		event(g, ns, s[0], s[1], s[2], s[3])
	}
	// The other Provider is not held up: it has every one while the slow one still waits.
	g.Eventually(func(g Gomega) {
		var lines []string
		for _, n := range fast.received() {
			lines = append(lines, strings.Split(n.Message, "\n")...)
		}
		for _, s := range steps {
			g.Expect(lines).To(ContainElement(s[3]))
		}
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(slow.received()).To(HaveLen(1), "the slow destination still holds the first")

	// The fold shows in the Provider's status and the metric before anything more is delivered;
	// the other Provider folded nothing.
	slowKey := types.NamespacedName{Namespace: ns, Name: "slow"}
	g.Eventually(func(g Gomega) {
		p := &notifyv1.Provider{}
		g.Expect(k8s.Get(ctx, slowKey, p)).To(Succeed())
		g.Expect(p.Status.Folded).To(Equal(int64(12)))
		g.Expect(p.Status.Dropped).To(BeZero())
		g.Expect(p.Status.LastFoldedTime).NotTo(BeNil())
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(counterValue(g, "plumb_notification_folded_total", map[string]string{"namespace": ns, "name": "slow"})).To(Equal(12.0))
	g.Expect(counterValue(g, "plumb_notification_folded_total", map[string]string{"namespace": ns, "name": "fast"})).To(BeZero())
	fastP := &notifyv1.Provider{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fast"}, fastP)).To(Succeed())
	g.Expect(fastP.Status.Folded).To(BeZero())

	// Released: the digest, then the two that waited after it.
	close(slow.release)
	released = true
	g.Eventually(slow.received, timeout, 20*time.Millisecond).Should(HaveLen(4))
	got := slow.received()
	dg := got[1]
	g.Expect(dg.Kind + "/" + dg.Namespace + "/" + dg.Name).To(Equal("Provider/" + ns + "/slow"))
	g.Expect(dg.Reason).To(Equal(notify.DigestReason))
	g.Expect(dg.Severity).To(Equal("error"))
	g.Expect(dg.Metadata).To(And(HaveKeyWithValue("folded", "12"), HaveKeyWithValue("objects", "4")))
	lines := strings.Split(dg.Message, "\n")
	g.Expect(lines[0]).To(HavePrefix("12 notifications of 4 objects came faster than " + ns + "/slow delivers them"))
	obj := func(name string) string { return "Kustomization/" + ns + "/" + name + ": " }
	g.Expect(lines[1:]).To(Equal([]string{
		obj("app-b") + "ApplyFailed (error, main@sha1:0123456789ab) b3",
		obj("app-c") + "HealthCheckFailed (error, main@sha1:0123456789ab) c3",
		obj("app-a") + "Succeeded (info, main@sha1:0123456789ab) a4",
		obj("app-d") + "Succeeded (info, main@sha1:0123456789ab) d2",
	}), "the last state of each object, failures first")
	g.Expect(got[2].Name + " " + got[2].Message).To(Equal("app-a a5"))
	g.Expect(got[3].Name + " " + got[3].Message).To(Equal("app-e e1"))
	g.Consistently(slow.received, 300*time.Millisecond, 50*time.Millisecond).Should(HaveLen(4))
}

// Commit statuses and incidents are about one object each: a digest reaches them as the last
// notification of each object.
func TestDigestMessagesPerType(t *testing.T) {
	g := NewWithT(t)
	dg := &notify.Digest{}
	for _, name := range []string{"api", "web", "api"} {
		dg.Add(notify.Notification{Kind: "Kustomization", Namespace: "shop", Name: name, Severity: "info", Reason: "Succeeded", Message: name})
	}
	provider := types.NamespacedName{Namespace: "shop", Name: "p"}
	chat := digestMessages(notifyv1.SlackProvider, provider, dg)
	g.Expect(chat).To(HaveLen(1))
	g.Expect(chat[0].Reason).To(Equal(notify.DigestReason))
	g.Expect(chat[0].APIVersion).To(Equal(notifyv1.GroupVersion.String()))
	for _, typ := range []string{notifyv1.GitHubProvider, notifyv1.GitLabProvider} {
		each := digestMessages(typ, provider, dg)
		g.Expect(each).To(HaveLen(2), typ)
		g.Expect(each[0].Name + each[1].Name).To(Equal("apiweb"))
	}
}

// The queue never holds more than FoldAt waiting notifications, and hands the digest out first.
func TestQueueFolds(t *testing.T) {
	g := NewWithT(t)
	q := newQueue()
	n := func(name string) notify.Notification {
		return notify.Notification{Kind: "Kustomization", Namespace: "a", Name: name}
	}
	// Nothing folds while the worker waits for a burst to end.
	for range 5 {
		f, _ := q.push(n("w"), 3)
		g.Expect(f).To(BeZero())
	}
	_, batch := q.take(10)
	g.Expect(batch).To(HaveLen(5))
	// While it delivers, the third waiting folds.
	for i, name := range []string{"x", "y"} {
		f, _ := q.push(n(name), 3)
		g.Expect(f).To(BeZero(), i)
	}
	f, dropped := q.push(n("x"), 3)
	g.Expect(f).To(Equal(3))
	g.Expect(dropped).To(BeZero())
	q.push(n("z"), 3)
	q.done()
	dg, batch := q.take(10)
	g.Expect(dg).NotTo(BeNil())
	g.Expect(dg.Events()).To(Equal(3))
	g.Expect(dg.Objects()).To(Equal(2))
	g.Expect(batch).To(HaveLen(1))
	g.Expect(batch[0].Name).To(Equal("z"))
	g.Expect(q.empty()).To(BeTrue())

	// What the worker took and has not delivered joins a digest that formed meanwhile.
	f, _ = q.foldRest([]notify.Notification{n("late")})
	g.Expect(f).To(BeZero(), "no digest: the worker goes on")
	for _, name := range []string{"p", "q", "r"} {
		q.push(n(name), 3)
	}
	f, _ = q.foldRest([]notify.Notification{n("older"), n("p")})
	g.Expect(f).To(Equal(2))
	dg, _ = q.take(10)
	g.Expect(dg.Events()).To(Equal(5))
	g.Expect(dg.Last()[0].Name).To(Equal("older"), "older than the digest's: first")
}
