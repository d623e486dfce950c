package controller

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/githubtest"
)

// commitStatusExpr names the commit status the loopback GitHub API receives, from Flux's
// variables: the event (its object, and the revision and the Alert's eventMetadata in its
// metadata), the Alert and the Provider. One that does not compile stalls the Provider, and
// the schema refuses it on a type that sets no commit statuses.
func TestProvider_CommitStatusExpr(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "csexpr-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	api := githubtest.NewTLS(t)
	provider := func(name, expr string) *notifyv1.Provider {
		return &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GitHubProvider, Address: api.URL + "/acme/" + name,
				SecretRef: &meta.LocalObjectReference{Name: "app"}, CertSecretRef: &meta.LocalObjectReference{Name: "app"},
				CommitStatusExpr: expr}}
	}
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns.Name}, StringData: map[string]string{
			"githubAppID": strconv.FormatInt(api.AppID, 10), "githubAppInstallationID": strconv.FormatInt(api.InstallationID, 10),
			"githubAppPrivateKey": string(api.PrivateKeyPEM), "githubAppBaseURL": api.URL, "ca.crt": string(api.CAPEM)}},
		provider("status", `(event.involvedObject.kind + "/" + event.involvedObject.name).lowerAscii() + "/" + alert.metadata.name +
			"/" + provider.metadata.name + "/" + event.metadata.revision.split("@")[0] + "/" + event.metadata.env`),
		provider("broken", `event.involvedObject.name +`),
		&notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "deploys", Namespace: ns.Name},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "status"}, EventMetadata: map[string]string{"env": "prod"},
				EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}},
	}
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	slack := provider("chat", `"x"`)
	slack.Spec.Type = notifyv1.SlackProvider
	err := k8s.Create(ctx, slack)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.commitStatusExpr is only supported for the 'github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops' provider types"))

	get := func(g Gomega, name string) *notifyv1.Provider {
		p := &notifyv1.Provider{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, p)).To(Succeed())
		return p
	}
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.IsReady(get(g, "status"))).To(BeTrue())
		expectStalled(g, get(g, "broken"), notifyv1.InvalidCELExpressionReason, `spec.commitStatusExpr: invalid CEL expression "event.involvedObject.name +"`)
	}, timeout, 100*time.Millisecond).Should(Succeed())

	g.Expect(commitEvent(ctx, ns.Name, "shop")).To(Succeed())
	g.Eventually(api.Statuses, timeout, 50*time.Millisecond).Should(HaveLen(1))
	g.Expect(api.Statuses()[0].Repo).To(Equal("acme/status"))
	g.Expect(api.Statuses()[0].Context).To(Equal("kustomization/shop/deploys/status/main/prod"))
}
