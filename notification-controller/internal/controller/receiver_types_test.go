package controller

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/receiver"
)

// typedReceiver creates a Receiver of a type in a new namespace, with a Secret of data when
// given (the Receiver's secretRef), over every GitRepository of the namespace; edit changes its
// spec before it is created. It waits until the Receiver is Ready and served, and returns it.
func typedReceiver(g *WithT, typ string, data map[string]string, edit func(*notifyv1.ReceiverSpec)) *notifyv1.Receiver {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "notify-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: typ, Namespace: ns.Name},
		Spec: notifyv1.ReceiverSpec{Type: typ,
			Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "*"}}},
	}
	if data != nil {
		g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns.Name}, StringData: data})).To(Succeed())
		rcv.Spec.SecretRef = &meta.LocalObjectReference{Name: "hook"}
	}
	if edit != nil {
		edit(&rcv.Spec)
	}
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(conditions.IsReady(rcv)).To(BeTrue(), conditions.GetMessage(rcv, meta.ReadyCondition))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	served(g, rcv.Status.WebhookPath)
	return rcv
}

// A GitHub Actions job calls a generic-oidc Receiver with its OIDC token: the token is checked
// against the issuer's keys (found by discovery), the validations name the caller, and the
// filters read its claims.
func TestReceiver_GenericOIDC(t *testing.T) {
	g := NewWithT(t)
	actions, err := startIssuer()
	g.Expect(err).NotTo(HaveOccurred())
	defer actions.Close()
	rcv := typedReceiver(g, notifyv1.GenericOIDCReceiver, nil, func(s *notifyv1.ReceiverSpec) {
		s.OIDCProviders = []notifyv1.OIDCProvider{{
			IssuerURL: actions.URL,
			Variables: []notifyv1.OIDCVariable{{Name: "owner", Expression: "claims.repository_owner"}},
			Validations: []notifyv1.OIDCValidation{
				{Expression: "vars.owner == 'acme'", Message: "only acme's workflows"},
				{Expression: "claims.ref == 'refs/heads/main'", Message: "only the main branch"},
			},
		}}
		s.ResourceFilter = `claims.repository.endsWith('/' + res.metadata.name)`
	})
	g.Expect(rcv.Spec.SecretRef).To(BeNil())
	g.Expect(rcv.Status.WebhookPath).To(Equal(receiver.Path("", rcv.Name, rcv.Namespace)), "the path of name and namespace alone")
	g.Expect(conditions.GetMessage(rcv, meta.ReadyCondition)).To(ContainSubstring("receiving generic-oidc calls"))
	app := gitRepository(g, rcv.Namespace, "app", nil)
	infra := gitRepository(g, rcv.Namespace, "infra", nil)
	claims := map[string]any{"iss": actions.URL, "aud": "notification-controller", "sub": "repo:acme/app:ref:refs/heads/main",
		"repository": "acme/app", "repository_owner": "acme", "ref": "refs/heads/main"}
	bearer := func(c map[string]any) map[string]string {
		return map[string]string{"Authorization": "Bearer " + actions.token(c)}
	}

	code, text := post(g, rcv.Status.WebhookPath, bearer(claims), nil)
	g.Expect(code).To(Equal(http.StatusOK), text)
	g.Expect(text).To(ContainSubstring("1 object(s)"))
	g.Expect(requestedAt(g, app)).NotTo(BeEmpty())
	g.Expect(requestedAt(g, infra)).To(BeEmpty(), "the filter read the token's repository")

	// Refused: a branch the validations do not allow (the caller reads why), a token for
	// another audience, no token.
	claims["ref"] = "refs/heads/dev"
	code, text = post(g, rcv.Status.WebhookPath, bearer(claims), nil)
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(text).To(ContainSubstring("only the main branch"))
	claims["ref"], claims["aud"] = "refs/heads/main", "sts.amazonaws.com"
	code, text = post(g, rcv.Status.WebhookPath, bearer(claims), nil)
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(text).To(Equal("unauthorized\n"), "nothing about the token is told")
	code, _ = post(g, rcv.Status.WebhookPath, nil, nil)
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(requestedAt(g, infra)).To(BeEmpty())
}

// A validation that does not compile stalls the Receiver; its calls act on nothing.
func TestReceiver_GenericOIDCInvalidExpressionStalls(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "notify-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "oidc", Namespace: ns.Name},
		Spec: notifyv1.ReceiverSpec{Type: notifyv1.GenericOIDCReceiver,
			OIDCProviders: []notifyv1.OIDCProvider{{IssuerURL: "https://token.actions.githubusercontent.com",
				Validations: []notifyv1.OIDCValidation{{Expression: "claims.repository_owner + '-x'", Message: "m"}}}},
			Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "*"}}},
	}
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectStalled(g, rcv, notifyv1.InvalidCELExpressionReason, "spec.oidcProviders[0].validations[0]")
	}, timeout, 100*time.Millisecond).Should(Succeed())
	served(g, rcv.Status.WebhookPath)
	code, _ := post(g, rcv.Status.WebhookPath, nil, nil)
	g.Expect(code).To(Equal(http.StatusServiceUnavailable))
}

// Artifact Registry notifications come as Pub/Sub pushes with a Google-signed token: the
// service account and audience are the Secret's, and the filters see the notification.
func TestReceiver_GCR(t *testing.T) {
	g := NewWithT(t)
	const email = "gar-push@my-project.iam.gserviceaccount.com"
	rcv := typedReceiver(g, notifyv1.GCRReceiver, map[string]string{"token": "gcr-salt", "email": email, "audience": "https://flux.example.com/gar"},
		func(s *notifyv1.ReceiverSpec) { s.ResourceFilter = `req.tag.contains('/' + res.metadata.name + ':')` })
	hello := gitRepository(g, rcv.Namespace, "hello-world", nil)
	other := gitRepository(g, rcv.Namespace, "other", nil)
	push := []byte(`{"message":{"attributes":{},"data":"` + base64.StdEncoding.EncodeToString([]byte(
		`{"action":"INSERT","digest":"us-east1-docker.pkg.dev/my-project/my-repo/hello-world@sha256:6ec128e26cd5","tag":"us-east1-docker.pkg.dev/my-project/my-repo/hello-world:1.1"}`)) +
		`","messageId":"2070443601311540","publishTime":"2021-02-26T19:13:55.749Z"},"subscription":"projects/my-project/subscriptions/gar"}`)
	claims := map[string]any{"iss": "https://accounts.google.com", "aud": "https://flux.example.com/gar", "email": email, "email_verified": true, "sub": "1"}
	call := func(c map[string]any) (int, string) {
		return post(g, rcv.Status.WebhookPath, map[string]string{"Authorization": "Bearer " + google.token(c), "Content-Type": "application/json"}, push)
	}

	code, text := call(claims)
	g.Expect(code).To(Equal(http.StatusOK), text)
	g.Expect(text).To(ContainSubstring("1 object(s)"))
	g.Expect(requestedAt(g, hello)).NotTo(BeEmpty())
	g.Expect(requestedAt(g, other)).To(BeEmpty())

	claims["email"] = "someone@other-project.iam.gserviceaccount.com"
	code, _ = call(claims)
	g.Expect(code).To(Equal(http.StatusUnauthorized), "another service account")
	claims["email"], claims["aud"] = email, "https://flux.example.com/other"
	code, _ = call(claims)
	g.Expect(code).To(Equal(http.StatusUnauthorized), "another audience")
	g.Expect(requestedAt(g, other)).To(BeEmpty())
}

// A gcr Receiver's Secret needs the service account and audience: without them it is not Ready,
// and says which key is missing.
func TestReceiver_GCRNeedsEmailAndAudience(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "notify-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns.Name},
		StringData: map[string]string{"token": "salt", "audience": "https://flux.example.com/gar"}})).To(Succeed())
	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "gcr", Namespace: ns.Name},
		Spec: notifyv1.ReceiverSpec{Type: notifyv1.GCRReceiver, SecretRef: &meta.LocalObjectReference{Name: "hook"},
			Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "*"}}},
	}
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(conditions.GetReason(rcv, meta.ReadyCondition)).To(Equal(notifyv1.TokenNotFoundReason))
		g.Expect(conditions.GetMessage(rcv, meta.ReadyCondition)).To(ContainSubstring("has no email key (gcr type: the service account"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// Nexus, Azure Container Registry and CDEvents calls, with their hosts' payloads.
func TestReceiver_RegistryAndCDEventsTypes(t *testing.T) {
	nexusBody := []byte(`{"timestamp":"2016-11-10T23:57:49.664+0000","nodeId":"52905B51-085CCABB-CEBBEAAD-16795588-FC927D93","initiator":"admin/127.0.0.1","repositoryName":"docker-hosted","action":"CREATED","component":{"id":"08909bf0c86cf6c9600aade89e1c5e25","componentId":"ZG9ja2VyLWhvc3RlZDowODkwOWJmMGM4NmNmNmM5NjAwYWFkZTg5ZTFjNWUyNQ","format":"docker","name":"app","version":"1.2.0"}}`)
	nexusSig := func(key string) string {
		m := hmac.New(sha1.New, []byte(key))
		m.Write(nexusBody)
		return hex.EncodeToString(m.Sum(nil))
	}
	acrBody := []byte(`{"id":"cb8c3971-9adc-488b-bdd8-43cbb4974ff5","timestamp":"2017-11-17T16:52:01.343145347Z","action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":524,"digest":"sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d","length":524,"repository":"app","tag":"v1"},"request":{"id":"3cbb6949-7549-4fa1-86cd-a6d5451dffc7","host":"myregistry.azurecr.io","method":"PUT","useragent":"docker/17.09.0-ce"}}`)
	cdBody := []byte(`{"context":{"version":"0.4.1","id":"271069a8-fc18-44f1-b38f-9d70a1695819","source":"/event/source/123","type":"dev.cdevents.change.merged.0.2.0","timestamp":"2023-03-20T14:27:05.315384Z"},"subject":{"id":"mySubject123","source":"/event/source/123","type":"change","content":{"repository":{"id":"acme/app","source":"https://github.com"}}}}`)
	const token = "registry-hook-s3cret"
	for _, tc := range []struct {
		typ    string
		events []string
		filter string
		good   map[string]string
		body   []byte
		bad    map[string]string // headers of a refused call
		badFor int
	}{
		{notifyv1.NexusReceiver, []string{"CREATED"}, `req.component.name == res.metadata.name`,
			map[string]string{"X-Nexus-Webhook-Signature": nexusSig(token), "X-Nexus-Webhook-Id": "rm:repository:component", "Content-Type": "application/json; charset=UTF-8"},
			nexusBody, map[string]string{"X-Nexus-Webhook-Signature": nexusSig("another key")}, http.StatusUnauthorized},
		{notifyv1.ACRReceiver, []string{"push"}, `req.target.repository == res.metadata.name`,
			map[string]string{"Content-Type": "application/json"}, acrBody, nil, http.StatusBadRequest},
		{notifyv1.CDEventsReceiver, []string{"dev.cdevents.change.merged"}, `req.subject.content.repository.id.endsWith('/' + res.metadata.name)`,
			map[string]string{"Ce-Specversion": "1.0", "Ce-Type": "dev.cdevents.change.merged.0.2.0", "Ce-Source": "/event/source/123", "Ce-Id": "271069a8", "Content-Type": "application/json"},
			cdBody, map[string]string{"Ce-Type": "dev.cdevents.change.merged.0.2.0"}, http.StatusBadRequest},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			g := NewWithT(t)
			rcv := typedReceiver(g, tc.typ, map[string]string{"token": token}, func(s *notifyv1.ReceiverSpec) {
				s.Events, s.ResourceFilter = tc.events, tc.filter
			})
			app := gitRepository(g, rcv.Namespace, "app", nil)
			web := gitRepository(g, rcv.Namespace, "web", nil)
			// Refused first: nothing is annotated.
			badBody := tc.body
			if tc.badFor == http.StatusBadRequest {
				badBody = []byte(`{"action":"push","target":{}}`)
			}
			code, _ := post(g, rcv.Status.WebhookPath, tc.bad, badBody)
			g.Expect(code).To(Equal(tc.badFor))
			g.Expect(requestedAt(g, app)).To(BeEmpty())

			code, text := post(g, rcv.Status.WebhookPath, tc.good, tc.body)
			g.Expect(code).To(Equal(http.StatusOK), text)
			g.Expect(text).To(ContainSubstring("1 object(s)"))
			g.Expect(requestedAt(g, app)).NotTo(BeEmpty())
			g.Expect(requestedAt(g, web)).To(BeEmpty(), "the filter read the payload")
		})
	}
}
