package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

// A dependsOn naming a Secret neither starts a watch (which would cache every Secret of the
// cluster) nor tells whether the Secret exists: the Kustomization stalls with one message.
func TestKustomization_SecretReferencesAreRefused(t *testing.T) {
	g := NewWithT(t)
	withSecret, without := newNamespace(t), newNamespace(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: withSecret}, StringData: map[string]string{"k": "v"}}
	g.Expect(k8s.Create(context.Background(), secret)).To(Succeed())

	var msgs []string
	for _, ns := range []string{withSecret, without} {
		source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/cm.yaml": configMap("cm", "1")})
		k := newKustomization(ns, "app", func(k *applyv1.Kustomization) {
			k.Spec.DependsOn = []applyv1.DependencyReference{{APIVersion: "v1", Kind: "Secret", Name: "x"}}
		})
		g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
		msg := waitNotReady(g, k, applyv1.AccessDeniedReason)
		g.Expect(conditions.IsStalled(k)).To(BeTrue())
		g.Expect(msg).To(ContainSubstring("plumb.dev/reference-target"))
		g.Expect(k.Status.LastAppliedRevision).To(BeEmpty())
		msgs = append(msgs, strings.ReplaceAll(msg, ns, "NS"))
	}
	g.Expect(msgs[0]).To(Equal(msgs[1]), "an existing and a missing Secret look the same")
	g.Expect(reconciler.watches.Kinds()).NotTo(ContainElement(schema.GroupKind{Kind: "Secret"}))

	// A sourceRef to a built-in kind (one without a CRD) is refused the same way.
	k := newKustomization(without, "web", func(k *applyv1.Kustomization) {
		k.Spec.SourceRef = applyv1.CrossNamespaceSourceReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	g.Expect(waitNotReady(g, k, applyv1.AccessDeniedReason)).To(ContainSubstring("spec.sourceRef"))
	g.Expect(reconciler.watches.Kinds()).NotTo(ContainElement(schema.GroupKind{Group: "apps", Kind: "Deployment"}))
}

// A dependency that does not exist and one that exists but is not Ready get the same message.
func TestKustomization_MissingAndNotReadyDependenciesLookAlike(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	notReady := newKustomization(ns, "nowhere") // its source is missing: it never turns Ready
	notReady.GenerateName, notReady.Name = "", "there"
	g.Expect(k8s.Create(context.Background(), notReady)).To(Succeed())
	waitNotReady(g, notReady, applyv1.SourceNotReadyReason)

	var msgs []string
	for _, dep := range []string{"there", "absent"} {
		k := newKustomization(ns, "nowhere", func(k *applyv1.Kustomization) {
			k.Spec.DependsOn = []applyv1.DependencyReference{{Name: dep}}
		})
		g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
		msgs = append(msgs, strings.ReplaceAll(waitNotReady(g, k, applyv1.DependencyNotReadyReason), dep, "NAME"))
	}
	g.Expect(msgs[0]).To(Equal(msgs[1]))
	g.Expect(msgs[0]).To(ContainSubstring("is not ready or not found"))
}
