//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// A push reaches the cluster through a webhook: the Git host calls the Receiver, which asks the
// GitRepository to reconcile; its new artifact triggers the Kustomization. Intervals are an
// hour, so only the webhook can make it happen.
func TestWebhookToCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git-webhook"))
	g.Expect(err).NotTo(HaveOccurred())
	defer git.Stop()
	repo, _, err := git.NewRepo("hooked", app("before the push", false))
	g.Expect(err).NotTo(HaveOccurred())

	ns := "webhook"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns}, StringData: map[string]string{"token": "e2e-webhook-token"}})).To(Succeed())
	gr := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "hooked", Namespace: ns},
		Spec:       sourcev1.GitRepositorySpec{URL: git.URL("hooked"), Interval: metav1.Duration{Duration: time.Hour}},
	}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	ks := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "hooked", Namespace: ns},
		Spec: applyv1.KustomizationSpec{
			SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "hooked"},
			Path:      "apps/web", TargetNamespace: ns, Prune: true,
			Interval: metav1.Duration{Duration: time.Hour}, RetryInterval: &metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(c.Create(ctx, ks)).To(Succeed())
	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "push", Namespace: ns},
		Spec: notifyv1.ReceiverSpec{
			Type: notifyv1.GenericReceiver, SecretRef: &meta.LocalObjectReference{Name: "hook"},
			Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "hooked"}},
		},
	}
	g.Expect(c.Create(ctx, rcv)).To(Succeed())
	greeting := func(g Gomega) string {
		cm := &corev1.ConfigMap{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cm)).To(Succeed())
		return cm.Data["greeting"]
	}
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(conditions.IsReady(rcv)).To(BeTrue())
		g.Expect(greeting(g)).To(Equal("before the push"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	_, err = repo.Commit("after the push", app("after the push", false))
	g.Expect(err).NotTo(HaveOccurred())
	sent := time.Now()
	resp, err := http.Post("http://"+receiverAddr+rcv.Status.WebhookPath, "application/json", strings.NewReader(`{"ref":"refs/heads/main"}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	resp.Body.Close()
	g.Eventually(greeting, timeout, 20*time.Millisecond).Should(Equal("after the push"))
	t.Logf("webhook call to applied change: %d ms", time.Since(sent).Milliseconds())
}
