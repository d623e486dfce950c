package controller

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// An event source with an apiVersion sends only the events about objects of that version: a
// Flux Kustomization of the same kind and name is not a Plumb one.
func TestAlert_EventSourceAPIVersion(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "alerts-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	s := &chatSink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	p := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL}}
	g.Expect(k8s.Create(ctx, p)).To(Succeed())
	a := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "plumb-only", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{
			ProviderRef:  meta.LocalObjectReference{Name: "chat"},
			EventSources: []notifyv1.EventSource{{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Name: "*"}},
		}}
	g.Expect(k8s.Create(ctx, a)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(conditions.IsReady(a)).To(BeTrue(), conditions.GetMessage(a, meta.ReadyCondition))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(conditions.IsReady(p)).To(BeTrue(), conditions.GetMessage(p, meta.ReadyCondition))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	record := func(apiVersion, name, note string) {
		g.Expect(k8s.Create(ctx, &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{GenerateName: name + "-", Namespace: ns.Name},
			EventTime:           metav1.NowMicro(),
			ReportingController: "apply-controller", ReportingInstance: "apply-controller-0",
			Action: "Reconcile", Reason: "Succeeded", Note: note, Type: corev1.EventTypeNormal,
			Regarding: corev1.ObjectReference{APIVersion: apiVersion, Kind: "Kustomization", Namespace: ns.Name, Name: name},
		})).To(Succeed())
	}
	record("kustomize.toolkit.fluxcd.io/v1", "flux-app", "another version")
	record("apply.plumb.dev/v1beta1", "plumb-app", "applied")
	g.Eventually(s.received, timeout, 50*time.Millisecond).Should(HaveLen(1))
	g.Expect(s.received()[0].Name).To(Equal("plumb-app"))
	g.Consistently(s.received, time.Second, 100*time.Millisecond).Should(HaveLen(1))
}
