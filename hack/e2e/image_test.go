//go:build e2e

package e2e

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// The pull model's loop, through all five built controllers: CI pushes an image tag,
// image-automation sees it and commits it to Git, source-controller fetches the commit,
// apply-controller rolls it out, and notification-controller tells a Slack channel (a sink on
// loopback) at each step. Git stays the one source of truth: the cluster changes only through
// the commit.
func TestImageTagToCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)

	reg := local.StartImageRegistry()
	defer reg.Close()
	image := reg.Image
	g.Expect(reg.Push("1.0.0")).To(Succeed())

	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git-image"))
	g.Expect(err).NotTo(HaveOccurred())
	defer git.Stop()
	_, _, err = git.NewRepo("fleet", map[string]string{"apps/web/deployment.yaml": local.WebDeployment(image, "1.0.0", "fleet:web")})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fleet"}})).To(Succeed())
	gr := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: "fleet"},
		Spec: sourcev1.GitRepositorySpec{URL: git.URL("fleet"), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}}}
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "fleet"},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "fleet"},
			Path: "apps/web", TargetNamespace: "fleet", Interval: metav1.Duration{Duration: time.Hour}, Prune: true}}
	repo := &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "fleet"},
		Spec: imagev1.ImageRepositorySpec{Image: image, Insecure: true, Interval: metav1.Duration{Duration: time.Hour}}}
	pol := &imagev1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "fleet"},
		Spec: imagev1.ImagePolicySpec{ImageRepositoryRef: meta.NamespacedObjectReference{Name: "web"},
			Policy: imagev1.ImagePolicyChoice{SemVer: &imagev1.SemVerPolicy{Range: "1.x"}}}}
	auto := &imagev1.ImageUpdateAutomation{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: "fleet"},
		Spec: imagev1.ImageUpdateAutomationSpec{SourceRef: imagev1.SourceReference{Kind: "GitRepository", Name: "fleet"},
			Git:      imagev1.GitSpec{Commit: imagev1.CommitSpec{Author: imagev1.CommitUser{Name: "plumb", Email: "plumb@example.invalid"}}},
			Interval: metav1.Duration{Duration: time.Hour}}}
	sink := &local.SlackSink{}
	chat := httptest.NewServer(sink)
	defer chat.Close()
	provider := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "slack", Namespace: "fleet"},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.SlackProvider, Address: chat.URL + "/services/T000/B000/XXXX"}}
	alert := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: "fleet"},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "slack"},
			EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}, {Kind: "ImageUpdateAutomation", Name: "*"}}}}
	for _, o := range []client.Object{provider, alert, gr, ks, repo, pol, auto} {
		g.Expect(c.Create(ctx, o)).To(Succeed())
	}
	imageInCluster := func(want string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			d := &appsv1.Deployment{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "fleet", Name: "web"}, d)).To(Succeed())
			g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(want))
		}, timeout, 200*time.Millisecond).Should(Succeed())
	}
	imageInCluster(image + ":1.0.0")
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(conditions.IsReady(auto)).To(BeTrue(), conditions.GetMessage(auto, meta.ReadyCondition))
	}, timeout, 200*time.Millisecond).Should(Succeed())

	// CI pushes 1.1.0; the registry's webhook (a Receiver in production) asks for a scan.
	g.Expect(reg.Push("1.1.0")).To(Succeed())
	request(g, repo)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(auto.Status.LastPushCommit).NotTo(BeEmpty())
	}, timeout, 200*time.Millisecond).Should(Succeed())
	// The Git host's webhook asks for a fetch of the new commit.
	request(g, gr)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(gr), gr)).To(Succeed())
		g.Expect(gr.Status.Artifact).NotTo(BeNil())
		g.Expect(gr.Status.Artifact.Revision).To(Equal("main@sha1:" + auto.Status.LastPushCommit))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	imageInCluster(image + ":1.1.0")

	// The channel heard of the commit and of its rollout.
	g.Eventually(sink.Received, timeout, 200*time.Millisecond).Should(ContainElements(
		HavePrefix("ImageUpdateAutomation/fleet/fleet: Succeeded"),
		HavePrefix("Kustomization/fleet/web:"),
	))
}
