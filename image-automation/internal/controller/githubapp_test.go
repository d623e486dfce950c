package controller

import (
	"context"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/gittestserver"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/githubtest"
)

// A GitRepository with provider github: the automation fetches and pushes with the app's
// installation token, which a Git server that takes nothing else accepts; one token serves
// the fetch, the listing and the push.
func TestAutomation_PushesWithGitHubApp(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	api := githubtest.New(t)
	srv := gittestserver.NewGitServer(gitServer.Root()).Auth("x-access-token", api.Token(1))
	g.Expect(srv.StartHTTP()).To(Succeed())
	t.Cleanup(srv.StopHTTP)

	image := newImage()
	pushTags(t, image, "1.0.0", "1.1.0")
	manifest := strings.ReplaceAll(strings.NewReplacer("%s:1.0.0", image+":1.0.0").Replace(deployment), "%s", ns)
	repo := newGitRepo(t, map[string]string{"apps/deploy.yaml": manifest})
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, StringData: map[string]string{
		"githubAppID":             strconv.FormatInt(api.AppID, 10),
		"githubAppInstallationID": strconv.FormatInt(api.InstallationID, 10),
		"githubAppPrivateKey":     string(api.PrivateKeyPEM),
		"githubAppBaseURL":        api.URL,
	}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.plumb.dev/v1beta1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "config", "namespace": ns},
		"spec": map[string]any{"url": srv.HTTPAddress() + "/" + path.Base(repo.URL), "interval": "1h",
			"ref": map[string]any{"branch": "main"}, "provider": "github", "secretRef": map[string]any{"name": "app"}},
	}})).To(Succeed())
	g.Expect(k8s.Create(ctx, imageRepository(ns, "app", image))).To(Succeed())
	g.Expect(k8s.Create(ctx, semverPolicy(ns, "app", "", "app", "1.x"))).To(Succeed())
	auto := automation(ns, "apps", "config")
	g.Expect(k8s.Create(ctx, auto)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(conditions.IsReady(auto)).To(BeTrue(), conditions.GetMessage(auto, meta.ReadyCondition))
		g.Expect(auto.Status.LastPushCommit).NotTo(BeEmpty())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	content, commit := repo.file("main", "apps/deploy.yaml")
	g.Expect(content).To(ContainSubstring(image + ":1.1.0"))
	g.Expect(commit.Hash.String()).To(Equal(auto.Status.LastPushCommit))
	g.Expect(api.Issued()).To(HaveLen(1))
	g.Expect(api.Refused()).To(BeEmpty())
}

// An app the API does not know is AuthenticationFailed on the automation, and the message
// names the Secret's key, never the private key.
func TestAutomation_GitHubAppRefused(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	api := githubtest.New(t)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, StringData: map[string]string{
		"githubAppID": "4242", "githubAppInstallationID": "404", "githubAppPrivateKey": string(api.PrivateKeyPEM), "githubAppBaseURL": api.URL,
	}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.plumb.dev/v1beta1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "config", "namespace": ns},
		"spec": map[string]any{"url": gitServer.HTTPAddress() + "/none.git", "interval": "1h",
			"ref": map[string]any{"branch": "main"}, "provider": "github", "secretRef": map[string]any{"name": "app"}},
	}})).To(Succeed())
	auto := automation(ns, "apps", "config")
	g.Expect(k8s.Create(ctx, auto)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(conditions.GetReason(auto, meta.ReadyCondition)).To(Equal(imagev1.AuthenticationFailedReason))
		msg := conditions.GetMessage(auto, meta.ReadyCondition)
		g.Expect(msg).To(ContainSubstring("has no installation 404"))
		g.Expect(msg).NotTo(ContainSubstring(string(api.PrivateKeyPEM[40:80])))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}
