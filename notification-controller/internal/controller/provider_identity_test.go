package controller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/auth/azure"
	"github.com/fluxcd/pkg/auth/gcp"
	. "github.com/onsi/gomega"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google/externalaccount"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
	"github.com/plumb-dev/plumb/shared/gitauth"
	"github.com/plumb-dev/plumb/shared/testing/cloudtest"
)

// entra stands for Microsoft Entra ID's token endpoint, which azidentity reaches over TLS at a
// fixed authority: fluxcd/pkg/auth's Azure provider is given it through its Implementation
// seam. It takes the ServiceAccount's token (the client assertion) that the API server issued,
// and answers a token naming the scope asked for.
type entra struct {
	azure.Implementation
	mu                 sync.Mutex
	calls              int
	tenant, client     string
	assertion          string
	err                error
	getAssertionFailed error
}

func (e *entra) NewClientAssertionCredential(tenantID, clientID string, getAssertion func(context.Context) (string, error), _ *azidentity.ClientAssertionCredentialOptions) (azcore.TokenCredential, error) {
	a, err := getAssertion(context.Background())
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tenant, e.client, e.assertion, e.getAssertionFailed = tenantID, clientID, a, err
	return e, nil
}

func (e *entra) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if e.err != nil {
		return azcore.AccessToken{}, e.err
	}
	return azcore.AccessToken{Token: "entra:" + strings.Join(o.Scopes, ","), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// googleSTS stands for Google's STS, reached by the external account configuration fluxcd/pkg/auth
// builds: given through the GCP provider's Implementation seam, it reads the ServiceAccount's
// token from the configuration's supplier and answers an access token.
type googleSTS struct {
	gcp.Implementation
	audience, subject string
}

func (s *googleSTS) NewTokenSource(ctx context.Context, conf externalaccount.Config) (oauth2.TokenSource, error) {
	tok, err := conf.SubjectTokenSupplier.SubjectToken(ctx, externalaccount.SupplierOptions{Audience: conf.Audience, SubjectTokenType: conf.SubjectTokenType})
	if err != nil {
		return nil, err
	}
	s.audience, s.subject = conf.Audience, tok
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "ya29.google", Expiry: time.Now().Add(time.Hour)}), nil
}

// A Provider's spec.serviceAccountName is its cloud identity: the ServiceAccount's token,
// issued by the API server for the exchange's audience, is exchanged for Entra ID's (with the
// scope of the type) or Google's, cached, and sent as the type's credential (a bearer token
// to Azure DevOps, the Event Hubs token, the Pub/Sub client's token).
func TestSenderFor_ServiceAccountIdentity(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "identity-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "notify", Namespace: ns.Name, Annotations: map[string]string{
		"azure.workload.identity/client-id": "client-1", "azure.workload.identity/tenant-id": "tenant-1",
		"gcp.auth.fluxcd.io/workload-identity-provider": "projects/123/locations/global/workloadIdentityPools/pool/providers/plumb",
	}}})).To(Succeed())

	id, err := NewCloudIdentity(true, 10, k8s)
	g.Expect(err).NotTo(HaveOccurred())
	ms, sts := &entra{}, &googleSTS{}
	id.Azure, id.GCP = azure.Provider{Implementation: ms}, gcp.Provider{Implementation: sts}
	opts := SenderOptions{Addresses: &notify.AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, AllowInsecureHTTP: true, Identity: id}

	// Azure DevOps: the commit status goes with the bearer token.
	var mu sync.Mutex
	var auths []string
	devops := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(devops.Close)
	provider := func(typ, address, channel string) *notifyv1.Provider {
		return &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "p-" + typ, Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: typ, Address: address, Channel: channel, ServiceAccountName: "notify"}}
	}
	ado := provider(notifyv1.AzureDevOpsProvider, devops.URL+"/org/project/_git/repo", "")
	s, err := SenderFor(ctx, k8s, ado, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Send(ctx, notify.Notification{Kind: "Kustomization", Namespace: "shop", Name: "app", Severity: "info", Reason: "Succeeded",
		Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567"})).To(Succeed())
	g.Expect(auths).To(Equal([]string{"Bearer entra:" + azure.ScopeDevOps}))
	g.Expect([]string{ms.tenant, ms.client}).To(Equal([]string{"tenant-1", "client-1"}))
	g.Expect(ms.getAssertionFailed).NotTo(HaveOccurred())
	claims, err := cloudtest.JWTClaims(ms.assertion)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims["sub"]).To(Equal("system:serviceaccount:" + ns.Name + ":notify"))
	g.Expect(claims["aud"]).To(ContainElement("api://AzureADTokenExchange"))
	_, err = SenderFor(ctx, k8s, ado, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ms.calls).To(Equal(1), "the token is cached")

	// Event Hubs: the token of its scope.
	s, err = SenderFor(ctx, k8s, provider(notifyv1.AzureEventHubProvider, "deploys", "shop-events"), opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.(*notify.AzureEventHub).Token).To(Equal("entra:" + azure.ScopeEventHubs))
	g.Expect(ms.calls).To(Equal(2), "another scope, another token")

	// The exchange goes through the Provider's proxy only where the address policy allows it.
	proxied := provider(notifyv1.AzureEventHubProvider, "deploys", "other-events")
	proxied.Spec.Proxy = "http://169.254.169.254:80"
	_, err = SenderFor(ctx, k8s, proxied, opts)
	g.Expect(refusalReason(err)).To(Equal(notifyv1.AddressRefusedReason), "%v", err)
	g.Expect(ms.calls).To(Equal(2), "no exchange through a refused proxy")

	// Pub/Sub: Google's token, from the workload identity provider's audience.
	s, err = SenderFor(ctx, k8s, provider(notifyv1.GooglePubSubProvider, "my-project", "deploys"), opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.(*notify.GooglePubSub).AccessToken).To(Equal("ya29.google"))
	g.Expect(s.(*notify.GooglePubSub).CredentialsJSON).To(BeEmpty())
	g.Expect(sts.audience).To(Equal("//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/plumb"))
	claims, err = cloudtest.JWTClaims(sts.subject)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims["aud"]).To(ContainElement(sts.audience))

	// A refused exchange is AuthenticationFailed, naming the ServiceAccount and no token.
	ms2 := &entra{err: errors.New("AADSTS700016: application not found")}
	id2, err := NewCloudIdentity(true, 10, k8s)
	g.Expect(err).NotTo(HaveOccurred())
	id2.Azure = azure.Provider{Implementation: ms2}
	_, err = SenderFor(ctx, k8s, ado, SenderOptions{Addresses: opts.Addresses, AllowInsecureHTTP: true, Identity: id2})
	g.Expect(errors.Is(err, gitauth.ErrAuth)).To(BeTrue(), "%v", err)
	g.Expect(refusalReason(err)).To(Equal(notifyv1.AuthenticationFailedReason))
	g.Expect(err.Error()).To(ContainSubstring("ServiceAccount " + ns.Name + "/notify"))
	g.Expect(err.Error()).NotTo(ContainSubstring(ms2.assertion))

	// A missing ServiceAccount fails the same way.
	missing := provider(notifyv1.AzureDevOpsProvider, devops.URL+"/org/project/_git/repo", "")
	missing.Spec.ServiceAccountName = "nobody"
	_, err = SenderFor(ctx, k8s, missing, opts)
	g.Expect(errors.Is(err, gitauth.ErrAuth)).To(BeTrue(), "%v", err)

	// The Secret may not give credentials as well.
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pat", Namespace: ns.Name}, StringData: map[string]string{"token": "pat-t0ken"}})).To(Succeed())
	both := provider(notifyv1.AzureDevOpsProvider, devops.URL+"/org/project/_git/repo", "")
	both.Spec.SecretRef = &meta.LocalObjectReference{Name: "pat"}
	_, err = SenderFor(ctx, k8s, both, opts)
	var ie *identitySpecError
	g.Expect(errors.As(err, &ie)).To(BeTrue(), "%v", err)
	g.Expect(refusalReason(err)).To(Equal(notifyv1.InvalidSpecReason))
	g.Expect(ie.stall).To(BeFalse(), "mended by a change of the Secret, which a Stalled Provider would not see")

	// Other types, and a controller without the gate, refuse the field before any request.
	chat := provider(notifyv1.SlackProvider, "https://hooks.slack.com/services/x", "")
	g.Expect(errors.As(id.checkIdentity(chat), &ie)).To(BeTrue())
	g.Expect([]any{ie.reason, ie.stall}).To(Equal([]any{notifyv1.InvalidSpecReason, true}))
	g.Expect(errors.As((*CloudIdentity)(nil).checkIdentity(ado), &ie)).To(BeTrue())
	g.Expect([]any{ie.reason, ie.stall}).To(Equal([]any{notifyv1.FeatureGateDisabledReason, true}))
	g.Expect(ie.msg).To(ContainSubstring("--feature-gates=ObjectLevelWorkloadIdentity=true"))
}

// The running controller (started without the feature gate) stalls a Provider that names a
// ServiceAccount, with a reason and a message that say what to do.
func TestProvider_ServiceAccountNeedsTheGate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "identity-gate-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	p := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "ado", Namespace: ns.Name},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.AzureDevOpsProvider, Address: "https://dev.azure.com/org/project/_git/repo", ServiceAccountName: "notify"}}
	g.Expect(k8s.Create(ctx, p)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectStalled(g, p, notifyv1.FeatureGateDisabledReason, "--feature-gates=ObjectLevelWorkloadIdentity=true")
	}, timeout, 50*time.Millisecond).Should(Succeed())
}
