package controller

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

// chatSink stands in for a chat service: it records notifications, failing first when told.
type chatSink struct {
	mu    sync.Mutex
	got   []notify.Notification
	fails int
}

func (s *chatSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var n notify.Notification
	_ = json.Unmarshal(b, &n)
	s.got = append(s.got, n)
}

func (s *chatSink) received() []notify.Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notify.Notification(nil), s.got...)
}

// event records an event about a Kustomization as apply-controller would.
func event(g *WithT, ns, name, typ, reason, note string) {
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{GenerateName: name + "-", Namespace: ns, Annotations: map[string]string{"plumb.dev/revision": "main@sha1:0123456789abcdef0123"}},
		EventTime:           metav1.NowMicro(),
		ReportingController: "apply-controller", ReportingInstance: "apply-controller-0",
		Action: "Reconcile", Reason: reason, Note: note, Type: typ,
		Regarding: corev1.ObjectReference{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Namespace: ns, Name: name},
	}
	g.Expect(k8s.Create(context.Background(), ev)).To(Succeed())
}

func TestAlert_EventsReachTheProvider(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "alerts-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	s := &chatSink{fails: 2}
	srv := httptest.NewServer(s)
	defer srv.Close()

	p := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL}}
	g.Expect(k8s.Create(ctx, p)).To(Succeed())
	a := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{
			ProviderRef:   meta.LocalObjectReference{Name: "chat"},
			EventSources:  []notifyv1.EventSource{{Kind: "Kustomization", Name: "shop-*"}},
			ExclusionList: []string{"^nothing changed"},
			Summary:       "prod", EventMetadata: map[string]string{"cluster": "eu-1"},
		}}
	g.Expect(k8s.Create(ctx, a)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(conditions.IsReady(a)).To(BeTrue(), conditions.GetMessage(a, meta.ReadyCondition))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(conditions.IsReady(p)).To(BeTrue(), conditions.GetMessage(p, meta.ReadyCondition))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	event(g, ns.Name, "shop-api", "Normal", "Succeeded", "Deployment/shop/api configured")
	event(g, ns.Name, "shop-api", "Normal", "Succeeded", "nothing changed") // excluded
	event(g, ns.Name, "billing", "Warning", "BuildFailed", "not selected")  // another name
	g.Eventually(s.received, timeout, 50*time.Millisecond).Should(HaveLen(1), "delivered after two 502s, once")
	n := s.received()[0]
	g.Expect(n.Kind + "/" + n.Namespace + "/" + n.Name).To(Equal("Kustomization/" + ns.Name + "/shop-api"))
	g.Expect(n.Message).To(Equal("Deployment/shop/api configured"))
	g.Expect(n.Severity).To(Equal("info"))
	g.Expect(n.Revision).To(Equal("main@sha1:0123456789abcdef0123"))
	g.Expect(n.Summary).To(Equal("prod"))
	g.Expect(n.Metadata).To(HaveKeyWithValue("cluster", "eu-1"))
	g.Consistently(s.received, time.Second, 100*time.Millisecond).Should(HaveLen(1))

	// A Provider that keeps failing shows it.
	s.mu.Lock()
	s.fails = 100
	s.mu.Unlock()
	event(g, ns.Name, "shop-web", "Warning", "ApplyFailed", "Service/shop/web is invalid")
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(notifyv1.DeliveryFailedReason))
		g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).To(ContainSubstring("502"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// Events recorded as the controllers record them (client-go's events broadcaster): a repeat
// becomes a series on the first Event and still reaches the Alert; a failure that falls silent
// is sent once alertAfter has passed.
func TestAlert_RepeatsAndSilentFailures(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "alerts-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	s := &chatSink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	g.Expect(k8s.Create(ctx, &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL}})).To(Succeed())
	every := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "every", Namespace: ns.Name}, Spec: notifyv1.AlertSpec{
		ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "repeat"}}}}
	late := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: ns.Name}, Spec: notifyv1.AlertSpec{
		ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "silent"}},
		NotifyOn: []string{notify.OnFailure}, AlertAfter: &metav1.Duration{Duration: 2 * time.Second}}}
	for _, a := range []*notifyv1.Alert{every, late} {
		g.Expect(k8s.Create(ctx, a)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(conditions.IsReady(a)).To(BeTrue())
		}, timeout, 100*time.Millisecond).Should(Succeed())
	}

	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: kubernetes.NewForConfigOrDie(env.Config).EventsV1()})
	g.Expect(b.StartRecordingToSinkWithContext(ctx)).To(Succeed())
	defer b.Shutdown()
	rec := b.NewRecorder(clientgoscheme.Scheme, "apply-controller")
	kustomization := func(name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("apply.plumb.dev/v1beta1")
		u.SetKind("Kustomization")
		u.SetNamespace(ns.Name)
		u.SetName(name)
		return u
	}
	rec.Eventf(kustomization("repeat"), nil, corev1.EventTypeWarning, "ApplyFailed", "Reconcile", "Service/x is invalid")
	g.Eventually(s.received, timeout, 50*time.Millisecond).Should(HaveLen(1))
	rec.Eventf(kustomization("repeat"), nil, corev1.EventTypeWarning, "ApplyFailed", "Reconcile", "Service/x is invalid")
	g.Eventually(s.received, timeout, 50*time.Millisecond).Should(HaveLen(2), "the repeat (an Event series) was not sent")

	start := time.Now()
	rec.Eventf(kustomization("silent"), nil, corev1.EventTypeWarning, "ApplyFailed", "Reconcile", "Service/y is invalid")
	g.Eventually(s.received, timeout, 50*time.Millisecond).Should(HaveLen(3), "a failure past alertAfter was not sent")
	g.Expect(time.Since(start)).To(BeNumerically(">=", 2*time.Second), "sent before alertAfter")
	g.Expect(s.received()[2].Name).To(Equal("silent"))
}

func TestAlert_BadInput(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "alerts-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	missing := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "no-provider", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "absent"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization"}}}}
	badRegex := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "bad-regex", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "absent"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization"}},
			InclusionList: []string{"(unclosed"}}}
	badGlob := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "bad-glob", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "absent"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "web-["}}}}
	noSecret := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "no-secret", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.SlackProvider, SecretRef: &meta.LocalObjectReference{Name: "absent"}}}
	for _, o := range []client.Object{missing, badRegex, badGlob, noSecret} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(missing), missing)).To(Succeed())
		g.Expect(conditions.GetMessage(missing, meta.ReadyCondition)).To(ContainSubstring("Provider " + ns.Name + "/absent: not found"))
		expectStalled(g, badRegex, "", `expression "(unclosed"`)
		expectStalled(g, badGlob, "", `eventSources name "web-[" is not a glob`)
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(noSecret), noSecret)).To(Succeed())
		g.Expect(conditions.GetReason(noSecret, meta.ReadyCondition)).To(Equal(notifyv1.SecretNotFoundReason))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// notifyOn: a failure is sent once however often it is retried, then its recovery.
func TestAlert_NotifyOnFailureAndRecovery(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "alerts-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	s := &chatSink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	g.Expect(k8s.Create(ctx, &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL}})).To(Succeed())
	a := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "stateful", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSeverity: "error",
			EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}, NotifyOn: []string{"Failure", "Recovery"}}}
	g.Expect(k8s.Create(ctx, a)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(conditions.IsReady(a)).To(BeTrue())
	}, timeout, 100*time.Millisecond).Should(Succeed())

	for range 3 {
		event(g, ns.Name, "shop", "Warning", "BuildFailed", "kustomization.yaml: broken")
	}
	g.Eventually(s.received, timeout, 50*time.Millisecond).Should(HaveLen(1))
	event(g, ns.Name, "shop", "Normal", "Succeeded", "applied main@sha1:2")
	g.Eventually(s.received, timeout, 50*time.Millisecond).Should(HaveLen(2))
	event(g, ns.Name, "shop", "Normal", "Succeeded", "applied main@sha1:3") // a change: not asked for
	g.Consistently(s.received, time.Second, 100*time.Millisecond).Should(HaveLen(2))
	got := s.received()
	g.Expect(got[0].Severity).To(Equal("error"))
	g.Expect(got[1].Reason).To(Equal("Succeeded"))
}

// A burst of events about one object and revision goes as one message.
func TestAlert_BurstIsOneMessage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "alerts-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	s := &chatSink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	g.Expect(k8s.Create(ctx, &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL}})).To(Succeed())
	a := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization"}}}}
	g.Expect(k8s.Create(ctx, a)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(conditions.IsReady(a)).To(BeTrue())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	// Events made in one go, as one reconcile records them (the suite's window is 300 ms).
	for _, note := range []string{"ConfigMap/x/a created", "Deployment/x/b configured", "Service/x/c created"} {
		event(g, ns.Name, "burst", "Normal", "Succeeded", note)
	}
	g.Eventually(s.received, timeout, 50*time.Millisecond).Should(HaveLen(1))
	g.Expect(s.received()[0].Message).To(Equal("ConfigMap/x/a created\nDeployment/x/b configured\nService/x/c created"))
}
