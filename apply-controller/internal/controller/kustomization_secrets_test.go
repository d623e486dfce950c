package controller

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

// A Secret variable whose value the API server refuses comes back in its error quoted, with the
// quote escaped and the trailing newline dropped: no form of it may reach status or events.
func TestKustomization_SecretValueInAPIErrorIsMasked(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	const value = "Quo\"ted-s3cret-value\n" // as kubectl create secret --from-file leaves it
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vars", Namespace: ns}, Data: map[string][]byte{"TIER": []byte(value)}}
	g.Expect(k8s.Create(context.Background(), secret)).To(Succeed())
	// A label value may not hold a quote: the API server refuses the ConfigMap, echoing it.
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  labels:\n    tier: ${TIER}\ndata:\n  key: v\n"
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/cm.yaml": cm})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.PostBuild = &applyv1.PostBuild{SubstituteFrom: []applyv1.SubstituteReference{{Kind: "Secret", Name: "vars"}}}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.ApplyFailedReason)
	g.Expect(msg).To(ContainSubstring("Invalid value"), "the API server's error is kept, masked")

	trimmed := strings.TrimSpace(value)
	quoted := strconv.Quote(trimmed)
	forms := []string{value, trimmed, quoted, quoted[1 : len(quoted)-1], "s3cret"}
	var texts []string
	getK(g, k)
	for _, c := range k.Status.Conditions {
		texts = append(texts, c.Message)
	}
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		var notes []string
		for _, e := range events.Items {
			if e.Regarding.Name == k.Name && e.Reason == applyv1.ApplyFailedReason {
				notes = append(notes, e.Note)
			}
		}
		g.Expect(notes).NotTo(BeEmpty())
		texts = append(texts, notes...)
	}, timeout).Should(Succeed())
	for _, text := range texts {
		for _, f := range forms {
			g.Expect(text).NotTo(ContainSubstring(f))
		}
	}
	g.Expect(conditions.GetMessage(k, meta.ReadyCondition)).To(ContainSubstring("<redacted>"))
}
