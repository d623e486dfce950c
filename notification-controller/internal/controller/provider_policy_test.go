package controller

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// ownStackLabel keeps a Provider from the suite's manager (whose policy allows loopback), so
// that a test can run a reconciler and a dispatcher of the default policy against it.
const ownStackLabel = "test.plumb.dev/own-stack"

// headerSink counts requests and keeps the Authorization headers it got.
type headerSink struct {
	mu    sync.Mutex
	auths []string
}

func (s *headerSink) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auths = append(s.auths, r.Header.Get("Authorization"))
}

func (s *headerSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// commitEvent records an event about a Kustomization at a full Git commit.
func commitEvent(ctx context.Context, ns, name string) error {
	return k8s.Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: ns,
			Annotations: map[string]string{"plumb.dev/revision": "main@sha1:0123456789abcdef0123456789abcdef01234567"}},
		EventTime:           metav1.NowMicro(),
		ReportingController: "apply-controller", ReportingInstance: "apply-controller-0",
		Action: "Reconcile", Reason: "Succeeded", Note: "Deployment/shop/api configured", Type: "Normal",
		Regarding: corev1.ObjectReference{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Namespace: ns, Name: name},
	})
}

// With the default address policy, a Provider on loopback gets nothing: the Provider says why
// (AddressRefused, naming the flag that loosens it) and so does the failed delivery.
func TestProvider_DefaultPolicyRefusesLoopback(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "policy-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	s := &headerSink{}
	srv := httptest.NewServer(s)
	defer srv.Close()

	p := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns.Name, Labels: map[string]string{ownStackLabel: "true"}},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: srv.URL + "/hook"}}
	a := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: ns.Name},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "chat"},
			EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}}
	for _, o := range []client.Object{p, a} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}

	// A reconciler and a dispatcher as cmd/main.go makes them without loosening flags.
	r := &ProviderReconciler{Client: k8s, APIReader: k8s, ControllerName: "notification-controller"}
	_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)})
	g.Expect(err).To(HaveOccurred())
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
	g.Expect(conditions.IsReady(p)).To(BeFalse())
	g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(notifyv1.AddressRefusedReason))
	g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).To(And(ContainSubstring("loopback"), ContainSubstring("--provider-allow-cidr")))

	d := &Dispatcher{Client: k8s, APIReader: k8s, Events: kubernetes.NewForConfigOrDie(env.Config).EventsV1(),
		ControllerName: "notification-controller", Backoff: 50 * time.Millisecond, GroupWindow: 50 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	defer func() { cancel(); <-done }()
	// Events go on until the dispatcher's watch has one.
	g.Eventually(func(g Gomega) {
		g.Expect(commitEvent(ctx, ns.Name, "shop")).To(Succeed())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).To(HavePrefix("delivery failed: "))
		g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(notifyv1.AddressRefusedReason))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).NotTo(ContainSubstring("/hook"))
	g.Consistently(s.got, 500*time.Millisecond, 50*time.Millisecond).Should(BeEmpty())
}

// A token never goes over plain HTTP: a github Provider on an http:// address is not Ready and
// its sink gets nothing, while the same Provider over TLS delivers the token.
func TestProvider_NoTokenOverPlainHTTP(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plainhttp-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	plain, secure := &headerSink{}, &headerSink{}
	plainSrv := httptest.NewServer(plain)
	defer plainSrv.Close()
	tlsSrv := httptest.NewTLSServer(secure)
	defer tlsSrv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})

	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token", Namespace: ns.Name}, StringData: map[string]string{"token": "s3cret-api-token"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: ns.Name}, Data: map[string][]byte{"ca.crt": ca}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "headers", Namespace: ns.Name},
			StringData: map[string]string{"headers": "Authorization: Bearer s3cret-header"}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GitHubProvider, Address: plainSrv.URL + "/org/app", SecretRef: &meta.LocalObjectReference{Name: "token"}}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "plain-headers", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: plainSrv.URL + "/hook", SecretRef: &meta.LocalObjectReference{Name: "headers"}}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GitHubProvider, Address: tlsSrv.URL + "/org/app",
				SecretRef: &meta.LocalObjectReference{Name: "token"}, CertSecretRef: &meta.LocalObjectReference{Name: "ca"}}},
	}
	for _, name := range []string{"plain", "plain-headers", "tls"} {
		objs = append(objs, &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: name}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}})
	}
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	provider := func(g Gomega, name string) *notifyv1.Provider {
		p := &notifyv1.Provider{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, p)).To(Succeed())
		return p
	}
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"plain", "plain-headers"} {
			p := provider(g, name)
			g.Expect(conditions.IsReady(p)).To(BeFalse(), name)
			g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(notifyv1.PlainHTTPRefusedReason), name)
			msg := conditions.GetMessage(p, meta.ReadyCondition)
			g.Expect(msg).To(ContainSubstring("--provider-allow-insecure-http"))
			g.Expect(msg).NotTo(ContainSubstring("s3cret"))
		}
		g.Expect(conditions.IsReady(provider(g, "tls"))).To(BeTrue())
	}, timeout, 100*time.Millisecond).Should(Succeed())

	g.Expect(commitEvent(ctx, ns.Name, "shop")).To(Succeed())
	g.Eventually(secure.got, timeout, 50*time.Millisecond).Should(ConsistOf("Bearer s3cret-api-token"))
	g.Consistently(plain.got, 500*time.Millisecond, 50*time.Millisecond).Should(BeEmpty())
	for _, name := range []string{"plain", "plain-headers"} {
		g.Expect(conditions.GetReason(provider(g, name), meta.ReadyCondition)).To(Equal(notifyv1.PlainHTTPRefusedReason))
	}
}
