package controller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

const timeout = 30 * time.Second

// gitRepository creates a GitRepository (source-controller's CRD, installed by the test
// environment; no source-controller runs here) to be reconciled.
func gitRepository(g *WithT, ns, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("source.plumb.dev/v1beta1")
	u.SetKind("GitRepository")
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(labels)
	u.Object["spec"] = map[string]any{"url": "https://git.example.invalid/app.git", "interval": "1h"}
	g.Expect(k8s.Create(context.Background(), u)).To(Succeed())
	return u
}

func requestedAt(g Gomega, u *unstructured.Unstructured) string {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(u), u)).To(Succeed())
	return u.GetAnnotations()[plumbreconcile.RequestedAtAnnotation]
}

// served waits until the webhook server's cache knows path: the status a test reads from the
// API server may not have reached the manager's cache yet.
func served(g *WithT, path string) {
	g.Eventually(func(g Gomega) {
		var list notifyv1.ReceiverList
		g.Expect(cached.List(context.Background(), &list, client.MatchingFields{WebhookPathIndex: path})).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty())
	}, timeout, 50*time.Millisecond).Should(Succeed())
}

func post(g *WithT, path string, header map[string]string, body []byte) (int, string) {
	req, err := http.NewRequest(http.MethodPost, hookURL+path, bytes.NewReader(body))
	g.Expect(err).NotTo(HaveOccurred())
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReceiver_GitHubPushReconcilesResources(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "notify-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	const token = "gh-webhook-s3cret"
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns.Name}, StringData: map[string]string{"token": token}})).To(Succeed())
	app := gitRepository(g, ns.Name, "app", nil)
	team := gitRepository(g, ns.Name, "team-a", map[string]string{"team": "a"})
	other := gitRepository(g, ns.Name, "team-b", map[string]string{"team": "b"})

	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "github", Namespace: ns.Name},
		Spec: notifyv1.ReceiverSpec{
			Type: notifyv1.GitHubReceiver, Events: []string{"push"},
			SecretRef: &meta.LocalObjectReference{Name: "hook"},
			Resources: []notifyv1.CrossNamespaceObjectReference{
				{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "app"},
				{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "*", MatchLabels: map[string]string{"team": "a"}},
			},
		},
	}
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(conditions.IsReady(rcv)).To(BeTrue())
		g.Expect(rcv.Status.WebhookPath).To(HavePrefix("/hook/"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	path := rcv.Status.WebhookPath
	g.Expect(path).NotTo(ContainSubstring(token))
	served(g, path)

	body := []byte(`{"ref":"refs/heads/main","after":"1a2b3c"}`)
	m := hmac.New(sha256.New, []byte(token))
	m.Write(body)
	signed := map[string]string{"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(m.Sum(nil)), "X-GitHub-Event": "push", "Content-Type": "application/json"}

	// Refused calls change nothing.
	code, _ := post(g, path, map[string]string{"X-Hub-Signature-256": "sha256=00", "X-GitHub-Event": "push"}, body)
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	code, _ = post(g, "/hook/"+strings.Repeat("0", 64), signed, body)
	g.Expect(code).To(Equal(http.StatusNotFound), "an unknown path says nothing")
	code, _ = post(g, path, signed, bytes.Repeat([]byte("x"), MaxBody+1))
	g.Expect(code).To(Equal(http.StatusRequestEntityTooLarge))
	ping := map[string]string{"X-Hub-Signature-256": signed["X-Hub-Signature-256"], "X-GitHub-Event": "ping"}
	code, _ = post(g, path, ping, body)
	g.Expect(code).To(Equal(http.StatusOK), "a ping is answered")
	g.Expect(requestedAt(g, app)).To(BeEmpty())

	code, text := post(g, path, signed, body)
	g.Expect(code).To(Equal(http.StatusOK), text)
	g.Expect(text).To(ContainSubstring("2 object(s)"))
	g.Expect(requestedAt(g, app)).NotTo(BeEmpty())
	g.Expect(requestedAt(g, team)).NotTo(BeEmpty())
	g.Expect(requestedAt(g, other)).To(BeEmpty(), "matchLabels selects")

	// A burst beyond the per-path rate is refused.
	limited := false
	for range 10 {
		if code, _ := post(g, path, ping, body); code == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	g.Expect(limited).To(BeTrue())

	// A new token: the old path is unknown at once; the Receiver publishes the new one.
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "hook"}, secret)).To(Succeed())
	secret.Data = map[string][]byte{"token": []byte("rotated-s3cret")}
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	code, _ = post(g, path, signed, body)
	g.Expect(code).To(Equal(http.StatusNotFound), "the old token's path still works")
	g.Expect(k8s.Patch(ctx, rcv, plumbreconcile.RequestPatch(time.Now().Format(time.RFC3339Nano)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(rcv.Status.WebhookPath).NotTo(Equal(path))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

func TestReceiver_MissingTokenIsNotReady(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "notify-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "generic", Namespace: ns.Name},
		Spec: notifyv1.ReceiverSpec{
			Type: notifyv1.GenericReceiver, SecretRef: &meta.LocalObjectReference{Name: "absent"},
			Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "x"}},
		},
	}
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(conditions.GetReason(rcv, meta.ReadyCondition)).To(Equal(notifyv1.TokenNotFoundReason))
		g.Expect(conditions.GetMessage(rcv, meta.ReadyCondition)).To(ContainSubstring("token Secret " + ns.Name + "/absent not found"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(rcv.Status.WebhookPath).To(BeEmpty())
}
