package controller

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// An Alert of namespace A never sends the events of namespace B, whether it names B or *: it is
// Stalled with AccessDenied, and the dispatcher does not match it with B's events.
func TestAlert_EventsOfOtherNamespacesDoNotCross(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	a, b := namespace(g, "alerts-a-"), namespace(g, "alerts-b-")
	s := &chatSink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	g.Expect(k8s.Create(ctx, &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: a},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL}})).To(Succeed())
	every := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "every-namespace", Namespace: a}, Spec: notifyv1.AlertSpec{
		ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Namespace: "*"}}}}
	other := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "namespace-b", Namespace: a}, Spec: notifyv1.AlertSpec{
		ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Namespace: b}}}}
	own := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "own", Namespace: a}, Spec: notifyv1.AlertSpec{
		ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "own-*"}}}}
	for _, al := range []*notifyv1.Alert{every, other, own} {
		g.Expect(k8s.Create(ctx, al)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for _, al := range []*notifyv1.Alert{every, other, own} {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(al), al)).To(Succeed())
			g.Expect(al.Status.ObservedGeneration).To(Equal(al.Generation))
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// B's event is matched before A's (one matching goroutine, in watch order): once A's
	// arrives, B's would have too.
	event(g, b, "theirs", "Warning", "ApplyFailed", "Secret/b/db is invalid")
	event(g, a, "own-app", "Normal", "Succeeded", "Deployment/a/app configured")
	g.Eventually(s.received, timeout, 50*time.Millisecond).ShouldNot(BeEmpty())
	g.Consistently(s.received, 500*time.Millisecond, 50*time.Millisecond).Should(HaveLen(1))
	n := s.received()[0]
	g.Expect(n.Namespace + "/" + n.Name).To(Equal(a + "/own-app"))

	for _, al := range []*notifyv1.Alert{every, other} {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(al), al)).To(Succeed())
		g.Expect(conditions.IsStalled(al)).To(BeTrue(), al.Name)
		g.Expect(conditions.GetReason(al, meta.ReadyCondition)).To(Equal(notifyv1.AccessDeniedReason), al.Name)
		g.Expect(conditions.GetMessage(al, meta.ReadyCondition)).To(ContainSubstring("--no-cross-namespace-refs"), al.Name)
	}
	g.Expect(conditions.IsReady(own)).To(BeTrue())
}
