package controller

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

// sopsSecret is the manifest of the Secret db holding value, sealed for recipient (an age
// recipient, or a cloud key with the credentials of opts).
func sopsSecret(t *testing.T, value, recipient string, opts ...sopstest.Options) string {
	o := sopstest.Options{}
	if len(opts) > 0 {
		o = opts[0]
	}
	o.EncryptedRegex = "^(data|stringData)$"
	plain := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: " + value + "\n"
	return string(sopstest.Encrypt(t, "yaml", []byte(plain), o, []string{recipient}))
}

func withDecryption(name string) func(*applyv1.Kustomization) {
	return func(k *applyv1.Kustomization) {
		k.Spec.Decryption = &applyv1.Decryption{Provider: applyv1.DecryptionProviderSOPS, SecretRef: &meta.LocalObjectReference{Name: name}}
	}
}

// withDecryptionIdentity decrypts with the cloud identity of the ServiceAccount sa, no Secret.
func withDecryptionIdentity(sa string) func(*applyv1.Kustomization) {
	return func(k *applyv1.Kustomization) {
		k.Spec.Decryption = &applyv1.Decryption{Provider: applyv1.DecryptionProviderSOPS, ServiceAccountName: sa}
	}
}

// A SOPS-encrypted Secret is applied in plaintext; a revision encrypted for another key fails
// with DecryptionFailed, naming the file and the recipient, and leaves what was applied; the
// plaintext is nowhere in the Kustomization's status or events.
func TestKustomization_DecryptsSOPS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	id, rcpt := sopstest.Identity(t)
	keys := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sops-keys", Namespace: ns}, Data: map[string][]byte{"identity.agekey": []byte(id)}}
	g.Expect(k8s.Create(ctx, keys)).To(Succeed())
	const first, second = "sops-plaintext-first-1", "sops-plaintext-second-2"

	gr := source(t, ns, "app", "main@sha1:1", map[string]string{
		"deploy/secret.yaml": sopsSecret(t, first, rcpt),
		"deploy/cm.yaml":     configMap("cm", "one"),
	})
	k := newKustomization(ns, gr.Name, withDecryption("sops-keys"))
	g.Expect(k8s.Create(ctx, k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	var s corev1.Secret
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &s)).To(Succeed())
	g.Expect(string(s.Data["password"])).To(Equal(first))

	_, other := sopstest.Identity(t)
	setArtifact(t, gr, "main@sha1:2", map[string]string{
		"deploy/secret.yaml": sopsSecret(t, second, other),
		"deploy/cm.yaml":     configMap("cm", "two"),
	})
	msg := waitNotReady(g, k, applyv1.DecryptionFailedReason)
	g.Expect(msg).To(ContainSubstring("deploy/secret.yaml"))
	g.Expect(msg).To(ContainSubstring(other))
	g.Expect(msg).NotTo(ContainSubstring("AGE-SECRET-KEY"))
	g.Expect(getK(g, k).Status.LastAppliedRevision).To(Equal("main@sha1:1"))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &s)).To(Succeed())
	g.Expect(string(s.Data["password"])).To(Equal(first), "nothing applied from the failed revision")
	var cm corev1.ConfigMap
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cm"}, &cm)).To(Succeed())
	g.Expect(cm.Data["key"]).To(Equal("one"))

	status, err := json.Marshal(getK(g, k).Status)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(status)).NotTo(ContainSubstring(first))
	g.Expect(string(status)).NotTo(ContainSubstring(second))
	var events eventsv1.EventList
	g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
	g.Expect(events.Items).NotTo(BeEmpty())
	for _, e := range events.Items {
		g.Expect(e.Note).NotTo(ContainSubstring(first))
		g.Expect(e.Note).NotTo(ContainSubstring(second))
	}
}

// A missing key Secret fails the build with DecryptionFailed before anything is applied.
func TestKustomization_DecryptionSecretMissing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	_, rcpt := sopstest.Identity(t)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/secret.yaml": sopsSecret(t, "never-applied-3", rcpt)})
	k := newKustomization(ns, gr.Name, withDecryption("absent"))
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.DecryptionFailedReason)
	g.Expect(msg).To(ContainSubstring("decryption Secret " + ns + "/absent is not ready or not found"))
	g.Expect(exists(ns, "db", &corev1.Secret{})).To(BeFalse())
}

// A decrypted value the API server refuses comes back quoted in its error: it is masked like
// the value of a Secret variable. The manifest is encrypted whole (apiVersion and kind too), as
// sops does by default.
func TestKustomization_DecryptedValueInAPIErrorIsMasked(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	id, rcpt := sopstest.Identity(t)
	keys := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sops-keys", Namespace: ns}, Data: map[string][]byte{"age.agekey": []byte(id)}}
	g.Expect(k8s.Create(ctx, keys)).To(Succeed())
	const value = "decrypted s3cret!" // not a valid label value
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  labels:\n    tier: " + value + "\ndata:\n  key: v\n"
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{
		"deploy/cm.yaml": string(sopstest.Encrypt(t, "yaml", []byte(cm), sopstest.Options{}, []string{rcpt})),
	})
	k := newKustomization(ns, gr.Name, withDecryption("sops-keys"))
	g.Expect(k8s.Create(ctx, k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.ApplyFailedReason)
	g.Expect(msg).To(ContainSubstring("Invalid value"))
	g.Expect(msg).To(ContainSubstring("<redacted>"))
	g.Expect(msg).NotTo(ContainSubstring("s3cret"))
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		var notes []string
		for _, e := range events.Items {
			if e.Regarding.Name == k.Name && e.Reason == applyv1.ApplyFailedReason {
				notes = append(notes, e.Note)
			}
		}
		g.Expect(notes).NotTo(BeEmpty())
		for _, n := range notes {
			g.Expect(n).NotTo(ContainSubstring("s3cret"))
		}
	}, timeout).Should(Succeed())
}
