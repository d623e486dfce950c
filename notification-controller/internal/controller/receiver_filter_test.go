package controller

import (
	"context"
	"net/http"
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
)

// filterReceiver creates a generic Receiver in a new namespace with a token Secret; edit
// changes its spec before it is created.
func filterReceiver(g *WithT, edit func(*notifyv1.ReceiverSpec)) *notifyv1.Receiver {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "notify-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns.Name},
		StringData: map[string]string{"token": "filter-s3cret"}})).To(Succeed())
	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "filtered", Namespace: ns.Name},
		Spec: notifyv1.ReceiverSpec{
			Type: notifyv1.GenericReceiver, SecretRef: &meta.LocalObjectReference{Name: "hook"},
			Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "*"}},
		},
	}
	edit(&rcv.Spec)
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	return rcv
}

func TestReceiver_ResourceFilterChoosesTheObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	rcv := filterReceiver(g, func(s *notifyv1.ReceiverSpec) {
		s.ResourceFilter = `req.repository == res.metadata.name || req.repository == "all"`
		s.Resources = []notifyv1.CrossNamespaceObjectReference{
			{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "app"},
			{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "*",
				Filter: `has(res.metadata.labels) && res.metadata.labels.team == "a"`},
		}
	})
	app := gitRepository(g, rcv.Namespace, "app", nil)
	web := gitRepository(g, rcv.Namespace, "web", map[string]string{"team": "a"})
	db := gitRepository(g, rcv.Namespace, "db", map[string]string{"team": "b"})
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(conditions.IsReady(rcv)).To(BeTrue())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	path := rcv.Status.WebhookPath
	served(g, path)
	jsonBody := map[string]string{"Content-Type": "application/json"}

	// Only the object the body names: web has team a but another name.
	code, text := post(g, path, jsonBody, []byte(`{"repository":"app"}`))
	g.Expect(code).To(Equal(http.StatusOK), text)
	g.Expect(text).To(ContainSubstring("1 object(s)"))
	g.Expect(requestedAt(g, app)).NotTo(BeEmpty())
	g.Expect(requestedAt(g, web)).To(BeEmpty(), "resourceFilter false")
	appAt := requestedAt(g, app)

	// Both filters must be true: db's team is b.
	code, text = post(g, path, jsonBody, []byte(`{"repository":"all"}`))
	g.Expect(code).To(Equal(http.StatusOK), text)
	g.Expect(text).To(ContainSubstring("2 object(s)"))
	g.Expect(requestedAt(g, app)).NotTo(Equal(appAt))
	g.Expect(requestedAt(g, web)).NotTo(BeEmpty())
	g.Expect(requestedAt(g, db)).To(BeEmpty(), "resources[].filter false")

	// A body that is not JSON as it claims is refused; one without the JSON Content-Type is no
	// `req` at all, and the filter cannot pass.
	code, _ = post(g, path, jsonBody, []byte(`not json`))
	g.Expect(code).To(Equal(http.StatusBadRequest))
	code, text = post(g, path, nil, []byte(`{"repository":"all"}`))
	g.Expect(code).To(Equal(http.StatusOK), text)
	g.Expect(text).To(ContainSubstring("0 object(s)"))
	g.Expect(requestedAt(g, db)).To(BeEmpty())
	// Why is on the Receiver, as a Warning event naming the object and the error.
	g.Eventually(func(g Gomega) {
		var list eventsv1.EventList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(rcv.Namespace))).To(Succeed())
		var notes []string
		for _, ev := range list.Items {
			if ev.Regarding.Name == rcv.Name && ev.Reason == notifyv1.InvalidCELExpressionReason && ev.Type == corev1.EventTypeWarning {
				notes = append(notes, ev.Note)
			}
		}
		g.Expect(notes).To(ContainElement(And(ContainSubstring("GitRepository "+rcv.Namespace+"/app not reconciled"), ContainSubstring("no such key"))))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

func TestReceiver_InvalidFilterStalls(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*notifyv1.ReceiverSpec)
		want []string
	}{
		"resourceFilter does not compile": {
			edit: func(s *notifyv1.ReceiverSpec) { s.ResourceFilter = `res.metadata.name ==` },
			want: []string{"spec.resourceFilter", `"res.metadata.name =="`},
		},
		"filter is not a bool": {
			edit: func(s *notifyv1.ReceiverSpec) { s.Resources[0].Filter = `"web"` },
			want: []string{"spec.resources[0].filter (GitRepository)", "not bool"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			rcv := filterReceiver(g, tc.edit)
			app := gitRepository(g, rcv.Namespace, "app", nil)
			g.Eventually(func(g Gomega) {
				expectStalled(g, rcv, notifyv1.InvalidCELExpressionReason, tc.want...)
			}, timeout, 100*time.Millisecond).Should(Succeed())
			// The path is published, but a call acts on nothing.
			g.Expect(rcv.Status.WebhookPath).NotTo(BeEmpty())
			served(g, rcv.Status.WebhookPath)
			code, _ := post(g, rcv.Status.WebhookPath, nil, []byte(`{}`))
			g.Expect(code).To(Equal(http.StatusServiceUnavailable))
			g.Expect(requestedAt(g, app)).To(BeEmpty())
		})
	}
}

// The interval is how often the token is read again; Flux's default.
func TestReceiver_IntervalDefaults(t *testing.T) {
	g := NewWithT(t)
	rcv := filterReceiver(g, func(*notifyv1.ReceiverSpec) {})
	g.Expect(rcv.Spec.Interval).NotTo(BeNil())
	g.Expect(rcv.Spec.Interval.Duration).To(Equal(10 * time.Minute))
	g.Expect(tokenRecheck(rcv)).To(Equal(10 * time.Minute))
	rcv.Spec.Interval = &metav1.Duration{Duration: time.Minute}
	g.Expect(tokenRecheck(rcv)).To(Equal(time.Minute))
}

// The schema refuses what Flux's refuses: generic-oidc needs oidcProviders and no secretRef,
// every other type a secretRef and no oidcProviders.
func TestReceiver_SchemaRulesOfSecretAndOIDC(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	oidc := []notifyv1.OIDCProvider{{IssuerURL: "https://token.actions.githubusercontent.com",
		Validations: []notifyv1.OIDCValidation{{Expression: `claims.repository_owner == "acme"`, Message: "not acme"}}}}
	secret := &meta.LocalObjectReference{Name: "hook"}
	for want, spec := range map[string]notifyv1.ReceiverSpec{
		"secretRef cannot be set when type is generic-oidc":       {Type: notifyv1.GenericOIDCReceiver, SecretRef: secret, OIDCProviders: oidc},
		"generic-oidc receivers must define at least one":         {Type: notifyv1.GenericOIDCReceiver},
		"oidcProviders can only be set when type is generic-oidc": {Type: notifyv1.GenericReceiver, SecretRef: secret, OIDCProviders: oidc},
		"secretRef is required when type is not generic-oidc":     {Type: notifyv1.GCRReceiver},
	} {
		spec.Resources = []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "*"}}
		rcv := &notifyv1.Receiver{ObjectMeta: metav1.ObjectMeta{Name: "rules", Namespace: "default"}, Spec: spec}
		err := k8s.Create(ctx, rcv)
		g.Expect(err).To(MatchError(ContainSubstring(want)), spec.Type)
	}
	// And the controller refuses them too, for API servers that skip the rules.
	for _, spec := range []notifyv1.ReceiverSpec{
		{Type: notifyv1.GenericOIDCReceiver, SecretRef: secret, OIDCProviders: oidc},
		{Type: notifyv1.GCRReceiver},
	} {
		g.Expect(checkSpec(&notifyv1.Receiver{Spec: spec})).To(HaveOccurred())
	}
	g.Expect(checkSpec(&notifyv1.Receiver{Spec: notifyv1.ReceiverSpec{Type: notifyv1.GenericOIDCReceiver, OIDCProviders: oidc}})).To(Succeed())
}
