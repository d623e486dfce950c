package controller

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

// An age-encrypted valuesFrom Secret is decrypted in memory and rendered into the chart's
// ConfigMap; with a key that does not open the next values, the release fails with
// DecryptionFailed and is not upgraded; without spec.decryption, ciphertext never reaches the
// chart.
func TestHelmRelease_DecryptsValues(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	id, rcpt := sopstest.Identity(t)
	const color = "s3cret-teal-0451"
	enc := sopstest.Encrypt(t, "yaml", []byte("greeting: hello-sops\ncolor: "+color+"\n"), sopstest.Options{}, []string{rcpt})
	g.Expect(string(enc)).NotTo(ContainSubstring(color))
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "values", Namespace: ns},
		Data: map[string][]byte{"values.yaml": enc}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sops-keys", Namespace: ns},
		Data: map[string][]byte{"identity.agekey": []byte(id)}})).To(Succeed())
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.ValuesFrom = []helmv1.ValuesReference{{Kind: "Secret", Name: "values"}}
		hr.Spec.Decryption = &helmv1.Decryption{Provider: "sops", SecretRef: &meta.LocalObjectReference{Name: "sops-keys"}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	g.Expect(configMapData(g, ns, "web-cfg")).To(Equal(map[string]string{"greeting": "hello-sops", "color": color}))

	// The values of a new encryption, for another recipient: the Secret's key does not open them.
	_, other := sopstest.Identity(t)
	enc2 := sopstest.Encrypt(t, "json", []byte(`{"greeting":"hello-again","color":"s3cret-red-7"}`), sopstest.Options{}, []string{other})
	sec := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "values"}, sec)).To(Succeed())
	sec.Data["values.yaml"] = enc2
	g.Expect(k8s.Update(ctx, sec)).To(Succeed())
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	msg := waitReason(g, hr, helmv1.DecryptionFailedReason)
	g.Expect(msg).To(ContainSubstring(`valuesFrom Secret ` + ns + `/values key "values.yaml"`))
	g.Expect(msg).To(ContainSubstring(other))
	getHR(g, hr)
	g.Expect(hr.Status.History).To(HaveLen(1), "no upgrade")
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "hello-sops"))

	// Nothing decrypted or read from the Secrets is in status or events.
	st, err := json.Marshal(hr.Status)
	g.Expect(err).NotTo(HaveOccurred())
	var events corev1.EventList
	g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
	texts := []string{string(st)}
	for _, e := range events.Items {
		texts = append(texts, e.Message)
	}
	for _, text := range texts {
		g.Expect(text).NotTo(ContainSubstring(color))
		g.Expect(text).NotTo(ContainSubstring("AGE-SECRET-KEY"))
	}

	// Without spec.decryption: DecryptionFailed, naming what to add.
	ns2 := newNamespace(t)
	chartSource(t, ns2, "app", testChart("1.0.0", false))
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "values", Namespace: ns2},
		Data: map[string][]byte{"values.yaml": enc}})).To(Succeed())
	plain := newRelease(ns2, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.ValuesFrom = []helmv1.ValuesReference{{Kind: "Secret", Name: "values"}}
	})
	g.Expect(k8s.Create(ctx, plain)).To(Succeed())
	msg = waitReason(g, plain, helmv1.DecryptionFailedReason)
	g.Expect(msg).To(ContainSubstring("no spec.decryption"))
	g.Expect(plain.Status.History).To(BeEmpty(), "nothing installed")
}
