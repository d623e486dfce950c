package controller

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/githosttest"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
	"github.com/plumb-dev/plumb/shared/testing/githubtest"
)

// giteaObjects are a Secret with the loopback Gitea's token and certificate, and a Provider of
// the type for its repository.
func giteaObjects(ns, name, typ string, h *githosttest.Server) (*corev1.Secret, *notifyv1.Provider) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		StringData: map[string]string{"token": h.Token, "ca.crt": string(h.CAPEM)}}
	p := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: notifyv1.ProviderSpec{Type: typ, Address: h.Repository(),
			SecretRef: &meta.LocalObjectReference{Name: name}, CertSecretRef: &meta.LocalObjectReference{Name: name}}}
	return secret, p
}

// failureEvent records a Warning event about a Kustomization at the commit of commitEvent.
func failureEvent(ctx context.Context, ns, name, msg string) error {
	return k8s.Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: ns,
			Annotations: map[string]string{"plumb.dev/revision": "main@sha1:0123456789abcdef0123456789abcdef01234567"}},
		EventTime:           metav1.NowMicro(),
		ReportingController: "apply-controller", ReportingInstance: "apply-controller-0",
		Action: "Reconcile", Reason: "BuildFailed", Note: msg, Type: "Warning",
		Regarding: corev1.ObjectReference{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Namespace: ns, Name: name},
	})
}

// A giteapullrequestcomment Provider, through an Alert, keeps one comment on the pull request
// of the event's commit on a loopback Gitea over HTTPS: the first event creates it (after the
// dispatcher's retries of a 503 and a 429), a later failure edits it in place. A Provider
// without the token says what it needs.
func TestProvider_GiteaPullRequestCommentThroughAnAlert(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "prcomment-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	h := githosttest.NewTLS(t, githosttest.Gitea)
	h.AddPull(githosttest.Pull{Number: 12, State: "open", Head: "0123456789abcdef0123456789abcdef01234567"})
	secret, p := giteaObjects(ns.Name, "gitea", notifyv1.GiteaPullRequestCommentProvider, h)
	noToken := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "notoken", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GiteaPullRequestCommentProvider, Address: h.Repository()}}
	alert := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "previews", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "gitea"}, EventMetadata: map[string]string{"env": "preview"},
			EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}}
	for _, o := range []client.Object{secret, p, noToken, alert} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		got := &notifyv1.Provider{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), got)).To(Succeed())
		g.Expect(conditions.IsReady(got)).To(BeTrue())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(noToken), got)).To(Succeed())
		g.Expect(conditions.GetReason(got, meta.ReadyCondition)).To(Equal(notifyv1.SecretNotFoundReason))
		g.Expect(conditions.GetMessage(got, meta.ReadyCondition)).To(Equal("giteapullrequestcomment needs the repository address and the Secret's token"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// Gitea is down, then busy: the dispatcher retries (after Retry-After) until it answers.
	h.Fail(githosttest.Failure{Status: http.StatusServiceUnavailable}, githosttest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "1"})
	g.Expect(commitEvent(ctx, ns.Name, "shop")).To(Succeed())
	g.Eventually(func() []githosttest.Comment { return h.Comments(12) }, timeout, 50*time.Millisecond).Should(HaveLen(1))
	g.Expect(h.Requests()[0].Path).To(Equal(h.Requests()[1].Path), "the failed call was made again")
	first := h.Comments(12)[0]
	g.Expect(first.Body).To(And(ContainSubstring("✅ **Kustomization/"+ns.Name+"/shop** — `Succeeded`"),
		ContainSubstring("| env | preview |"), ContainSubstring(string(p.UID))))

	g.Expect(failureEvent(ctx, ns.Name, "shop", "kustomize build ./shop: missing resource")).To(Succeed())
	g.Eventually(func() string { return h.Comments(12)[0].Body }, timeout, 50*time.Millisecond).Should(ContainSubstring("❌"))
	comments := h.Comments(12)
	g.Expect(comments).To(HaveLen(1), "the failure edits the comment")
	g.Expect(comments[0].ID).To(Equal(first.ID))
	g.Expect(comments[0].Body).To(ContainSubstring("kustomize build ./shop: missing resource"))
	for _, r := range h.Requests() {
		g.Expect(r.Header.Get("Authorization")).To(Equal("token " + h.Token))
	}
}

// A gitea commit status through an Alert is named by commitStatusExpr and described by
// commitStatusDescriptionExpr, both with Flux's variables. A description expression that does
// not compile stalls its Provider, and the schema refuses it on a type without commit statuses.
func TestProvider_GiteaCommitStatusExpressions(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "giteastatus-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	h := githosttest.NewTLS(t, githosttest.Gitea)
	secret, p := giteaObjects(ns.Name, "status", notifyv1.GiteaProvider, h)
	p.Spec.CommitStatusExpr = `"plumb/" + event.involvedObject.name + "/" + event.metadata.env`
	p.Spec.CommitStatusDescriptionExpr = `event.reason + " in " + event.metadata.env + " (" + provider.metadata.name + ")"`
	_, broken := giteaObjects(ns.Name, "broken", notifyv1.GiteaProvider, h)
	broken.Spec.SecretRef, broken.Spec.CertSecretRef, broken.Spec.CommitStatusDescriptionExpr = p.Spec.SecretRef, p.Spec.CertSecretRef, `event.reason +`
	alert := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "statuses", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "status"}, EventMetadata: map[string]string{"env": "prod"},
			EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}}
	for _, o := range []client.Object{secret, p, broken, alert} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	chat := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GiteaPullRequestCommentProvider, Address: h.Repository(), CommitStatusDescriptionExpr: `"x"`}}
	err := k8s.Create(ctx, chat)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.commitStatusDescriptionExpr is only supported for the 'github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops' provider types"))

	g.Eventually(func(g Gomega) {
		got := &notifyv1.Provider{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), got)).To(Succeed())
		g.Expect(conditions.IsReady(got)).To(BeTrue())
		expectStalled(g, broken, notifyv1.InvalidCELExpressionReason)
		g.Expect(conditions.GetMessage(broken, meta.ReadyCondition)).To(HavePrefix(`spec.commitStatusDescriptionExpr: invalid CEL expression "event.reason +"`))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	g.Expect(commitEvent(ctx, ns.Name, "shop")).To(Succeed())
	g.Eventually(h.Statuses, timeout, 50*time.Millisecond).Should(HaveLen(1))
	g.Expect(h.Statuses()[0]).To(Equal(githosttest.Status{SHA: "0123456789abcdef0123456789abcdef01234567", State: "success",
		Context: "plumb/shop/prod", Description: "Succeeded in prod (status)"}))
	g.Expect(strings.Count(h.Requests()[0].Path, "/statuses/")).To(Equal(1))
}

// githubpullrequestcomment and githubdispatch take a GitHub App in place of a token, as github
// does: their calls go to the app's API with the installation token the loopback GitHub
// issued. A type of another host ignores the app's keys and asks for its token.
func TestSenderFor_GitHubAppTypes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ghapptypes-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	api := githubtest.NewTLS(t)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns.Name}, StringData: map[string]string{
		"githubAppID": strconv.FormatInt(api.AppID, 10), "githubAppInstallationID": strconv.FormatInt(api.InstallationID, 10),
		"githubAppPrivateKey": string(api.PrivateKeyPEM), "githubAppBaseURL": api.URL, "ca.crt": string(api.CAPEM)}})).To(Succeed())
	provider := func(typ string) *notifyv1.Provider {
		return &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns.Name, UID: "uid-1"},
			Spec: notifyv1.ProviderSpec{Type: typ, Address: api.URL + "/acme/shop",
				SecretRef: &meta.LocalObjectReference{Name: "app"}, CertSecretRef: &meta.LocalObjectReference{Name: "app"}}}
	}
	opts := SenderOptions{Addresses: &notify.AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}

	s, err := SenderFor(ctx, k8s, provider(notifyv1.GitHubPullRequestCommentProvider), opts)
	g.Expect(err).NotTo(HaveOccurred())
	pr := s.(*notify.GitHubPullRequestComment)
	g.Expect([]any{pr.APIURL, pr.App, pr.Key, pr.Token}).To(Equal([]any{api.URL, true, "uid-1", ""}))
	tok, err := pr.TokenSource(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(api.Issued()).To(ContainElement(tok))

	s, err = SenderFor(ctx, k8s, provider(notifyv1.GitHubDispatchProvider), opts)
	g.Expect(err).NotTo(HaveOccurred())
	d := s.(*notify.GitHubDispatch)
	g.Expect(d.APIURL).To(Equal(api.URL))
	g.Expect(d.TokenSource(ctx)).To(Equal(tok), "one cached installation token")

	_, err = SenderFor(ctx, k8s, provider(notifyv1.GiteaPullRequestCommentProvider), opts)
	g.Expect(err).To(MatchError("giteapullrequestcomment needs the repository address and the Secret's token"))
}
