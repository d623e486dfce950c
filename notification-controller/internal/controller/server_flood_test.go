package controller

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// A flood of badly signed calls throttles the flooder, not the Receiver's real caller.
func TestServer_BadSignatureFloodDoesNotLockOutTheCaller(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(g, "flood-")
	const token = "flood-s3cret"
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns}, StringData: map[string]string{"token": token}})).To(Succeed())
	app := gitRepository(g, ns, "app", nil)
	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "hmac", Namespace: ns},
		Spec: notifyv1.ReceiverSpec{
			Type: notifyv1.GenericHMACReceiver, SecretRef: &meta.LocalObjectReference{Name: "hook"},
			Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "app"}},
		},
	}
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(rcv.Status.WebhookPath).To(HavePrefix("/hook/"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	path := rcv.Status.WebhookPath
	served(g, path)

	body := []byte(`{"ref":"main"}`)
	m := hmac.New(sha256.New, []byte(token))
	m.Write(body)
	good := map[string]string{"X-Signature": "sha256=" + hex.EncodeToString(m.Sum(nil))}
	bad := map[string]string{"X-Signature": "sha256=" + hex.EncodeToString(make([]byte, 32))}

	throttled := 0
	for range 200 {
		code, _ := post(g, path, bad, body)
		g.Expect(code).To(BeElementOf(http.StatusUnauthorized, http.StatusTooManyRequests))
		if code == http.StatusTooManyRequests {
			throttled++
		}
	}
	g.Expect(throttled).To(BeNumerically(">", 150), "the flood is throttled")
	code, text := post(g, path, good, body)
	g.Expect(code).To(Equal(http.StatusOK), text)
	g.Expect(requestedAt(g, app)).NotTo(BeEmpty())
	code, _ = post(g, path, bad, body)
	g.Expect(code).To(Equal(http.StatusTooManyRequests), "the flooder is still throttled")
}
