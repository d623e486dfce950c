package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// series counts the plumb_condition series of one object.
func series(g Gomega, kind, namespace, name string) int {
	families, err := crmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	n := 0
	for _, f := range families {
		if f.GetName() != "plumb_condition" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["namespace"] == namespace && labels["name"] == name {
				n++
			}
		}
	}
	return n
}

// Every kind exports its conditions, and its series go with the object: Providers, Alerts and
// Receivers have no finalizer, so the reconcile that finds them gone drops the series.
func TestConditionMetricsFollowTheObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "metrics-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	p := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: "http://127.0.0.1:9/hook"}}
	a := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "chat"},
			EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}}
	for _, o := range []client.Object{p, a} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(conditions.IsReady(a)).To(BeTrue())
		g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation), "Ready and observedGeneration arrive together")
		g.Expect(series(g, notifyv1.ProviderKind, ns.Name, "chat")).To(Equal(9), "Ready, Reconciling, Stalled × True, False, Unknown")
		g.Expect(series(g, notifyv1.AlertKind, ns.Name, "all")).To(Equal(9))
	}, 30*time.Second, 50*time.Millisecond).Should(Succeed())

	for _, o := range []client.Object{p, a} {
		g.Expect(k8s.Delete(ctx, o)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(series(g, notifyv1.ProviderKind, ns.Name, "chat")).To(BeZero())
		g.Expect(series(g, notifyv1.AlertKind, ns.Name, "all")).To(BeZero())
	}, 30*time.Second, 50*time.Millisecond).Should(Succeed())
}
