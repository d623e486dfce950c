package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/nats-io/nats.go"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
	"github.com/plumb-dev/plumb/shared/testing/notifytest"
)

// Each new type says what it lacks, and the schema refuses an address of the wrong shape.
func TestProvider_IncidentAndBusTypes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "incident-types-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	secret := func(name string, data map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name}, StringData: data}
	}
	ref := func(name string) *meta.LocalObjectReference { return &meta.LocalObjectReference{Name: name} }
	for _, s := range []*corev1.Secret{
		secret("routing-key", map[string]string{"token": "0123456789abcdef0123456789abcdef"}),
		secret("genie", map[string]string{"token": "genie-key"}),
		secret("basic", map[string]string{"username": "plumb", "password": "s3cret"}),
		secret("sa-key", map[string]string{"token": `{"type": "service_account"}`}),
		secret("eventhub", map[string]string{"address": "Endpoint=sb://plumb.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=k3y;EntityPath=deploys"}),
	} {
		g.Expect(k8s.Create(ctx, s)).To(Succeed())
	}
	cases := []struct {
		name   string
		spec   notifyv1.ProviderSpec
		reason string // empty: Ready
		msg    string
	}{
		{"pd", notifyv1.ProviderSpec{Type: notifyv1.PagerDutyProvider, Channel: "0123456789abcdef0123456789abcdef"}, "", ""},
		{"pd-plain-routing-key", notifyv1.ProviderSpec{Type: notifyv1.PagerDutyProvider, Address: "http://10.0.0.1:8080", Channel: "0123456789abcdef0123456789abcdef"}, "", ""},
		{"pd-secret-key-plain", notifyv1.ProviderSpec{Type: notifyv1.PagerDutyProvider, Address: "http://10.0.0.1:8080", SecretRef: ref("routing-key")},
			notifyv1.PlainHTTPRefusedReason, "--provider-allow-insecure-http"},
		{"pd-no-key", notifyv1.ProviderSpec{Type: notifyv1.PagerDutyProvider}, notifyv1.InvalidProviderReason, "routing key"},
		{"og", notifyv1.ProviderSpec{Type: notifyv1.OpsgenieProvider, SecretRef: ref("genie")}, "", ""},
		{"og-no-key", notifyv1.ProviderSpec{Type: notifyv1.OpsgenieProvider}, notifyv1.SecretNotFoundReason, "API key"},
		{"am", notifyv1.ProviderSpec{Type: notifyv1.AlertmanagerProvider, Address: "http://10.0.0.1:9093/api/v2/alerts"}, "", ""},
		{"am-basic-plain", notifyv1.ProviderSpec{Type: notifyv1.AlertmanagerProvider, Address: "http://10.0.0.1:9093/api/v2/alerts", SecretRef: ref("basic")},
			notifyv1.PlainHTTPRefusedReason, "in clear text"},
		{"am-no-address", notifyv1.ProviderSpec{Type: notifyv1.AlertmanagerProvider}, notifyv1.InvalidProviderReason, "api/v2/alerts"},
		{"otel", notifyv1.ProviderSpec{Type: notifyv1.OTelProvider, Address: "https://otel.example.com:4318/v1/traces", SecretRef: ref("basic")}, "", ""},
		{"nats", notifyv1.ProviderSpec{Type: notifyv1.NATSProvider, Address: "nats://10.0.0.1:4222", Channel: "deploys"}, "", ""},
		{"nats-no-subject", notifyv1.ProviderSpec{Type: notifyv1.NATSProvider, Address: "nats://10.0.0.1:4222"}, notifyv1.InvalidProviderReason, "subject"},
		{"nats-proxy", notifyv1.ProviderSpec{Type: notifyv1.NATSProvider, Address: "nats://10.0.0.1:4222", Channel: "deploys", Proxy: "http://10.0.0.2:3128"},
			notifyv1.InvalidProviderReason, "do not apply"},
		{"pubsub", notifyv1.ProviderSpec{Type: notifyv1.GooglePubSubProvider, Address: "plumb-project", Channel: "deploys", SecretRef: ref("sa-key")}, "", ""},
		{"pubsub-no-key", notifyv1.ProviderSpec{Type: notifyv1.GooglePubSubProvider, Address: "plumb-project", Channel: "deploys"},
			notifyv1.SecretNotFoundReason, "service account key"},
		{"eventhub", notifyv1.ProviderSpec{Type: notifyv1.AzureEventHubProvider, SecretRef: ref("eventhub")}, "", ""},
		{"eventhub-nothing", notifyv1.ProviderSpec{Type: notifyv1.AzureEventHubProvider}, notifyv1.SecretNotFoundReason, "connection string"},
	}
	for _, c := range cases {
		g.Expect(k8s.Create(ctx, &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: ns.Name}, Spec: c.spec})).To(Succeed(), c.name)
	}
	g.Eventually(func(g Gomega) {
		for _, c := range cases {
			p := &notifyv1.Provider{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: c.name}, p)).To(Succeed())
			if c.reason == "" {
				g.Expect(conditions.IsReady(p)).To(BeTrue(), "%s: %s", c.name, conditions.GetMessage(p, meta.ReadyCondition))
				continue
			}
			g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(c.reason), c.name)
			g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).To(And(ContainSubstring(c.msg), Not(ContainSubstring("s3cret")), Not(ContainSubstring("k3y"))), c.name)
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())

	for _, spec := range []notifyv1.ProviderSpec{
		{Type: notifyv1.AlertmanagerProvider, Address: "alertmanager:9093"},
		{Type: notifyv1.NATSProvider, Address: "http://nats:4222", Channel: "x"},
	} {
		err := k8s.Create(ctx, &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{GenerateName: "bad-", Namespace: ns.Name}, Spec: spec})
		g.Expect(err).To(MatchError(ContainSubstring("address")), spec.Type)
	}
}

// pagerDutyEvents is a loopback Events API v2 that keeps the events it accepts.
type pagerDutyEvents struct {
	mu     sync.Mutex
	events []map[string]any
}

func (p *pagerDutyEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev map[string]any
	if r.URL.Path != "/v2/enqueue" || json.NewDecoder(r.Body).Decode(&ev) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"x"}`))
}

// actions lists the event actions received, in order.
func (p *pagerDutyEvents) actions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, ev := range p.events {
		out = append(out, ev["event_action"].(string)+" "+ev["dedup_key"].(string))
	}
	return out
}

// Through the dispatcher, a failing then recovered object pages once and resolves once:
// PagerDuty (loopback) and the real Alertmanager, with and without notifyOn.
func TestAlert_IncidentsOpenAndClose(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "incidents-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	pd := &pagerDutyEvents{}
	pdSrv := httptest.NewServer(pd)
	defer pdSrv.Close()
	am := notifytest.StartAlertmanager(t, "", "")

	stateless := &pagerDutyEvents{}
	statelessSrv := httptest.NewServer(stateless)
	defer statelessSrv.Close()
	providers := []*notifyv1.Provider{
		{ObjectMeta: metav1.ObjectMeta{Name: "pagerduty", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.PagerDutyProvider, Address: pdSrv.URL, Channel: "0123456789abcdef0123456789abcdef"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "alertmanager", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.AlertmanagerProvider, Address: am.URL + "/api/v2/alerts"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "stateless", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.PagerDutyProvider, Address: statelessSrv.URL, Channel: "0123456789abcdef0123456789abcdef"}},
	}
	for _, p := range providers {
		g.Expect(k8s.Create(ctx, p)).To(Succeed())
		on := []string{notify.OnFailure, notify.OnRecovery}
		if p.Name == "stateless" {
			on = nil
		}
		g.Expect(k8s.Create(ctx, &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns.Name},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: p.Name}, NotifyOn: on,
				EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}})).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for _, p := range providers {
			a := &notifyv1.Alert{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: p.Name}, a)).To(Succeed())
			g.Expect(conditions.IsReady(a)).To(BeTrue())
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(providers[0]), providers[0])).To(Succeed())
	key := "plumb/" + string(providers[0].UID) + "/Kustomization/" + ns.Name + "/shop"

	// Retries of a failure, each its own burst (the suite groups within 300 ms).
	for range 3 {
		event(g, ns.Name, "shop", "Warning", "BuildFailed", "kustomization.yaml: broken")
	}
	g.Eventually(pd.actions, timeout, 50*time.Millisecond).Should(Equal([]string{"trigger " + key}))
	g.Eventually(func(g Gomega) {
		alerts, err := am.Alerts()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(alerts).To(HaveLen(1))
		g.Expect(alerts[0].Labels).To(And(HaveKeyWithValue("alertname", "PlumbKustomizationBuildFailed"), HaveKeyWithValue("namespace", ns.Name),
			HaveKeyWithValue("name", "shop")))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() int { return len(stateless.actions()) }, timeout, 50*time.Millisecond).Should(BeNumerically(">=", 1))

	event(g, ns.Name, "shop", "Normal", "ReconciliationSucceeded", "applied main@sha1:2")
	g.Eventually(pd.actions, timeout, 50*time.Millisecond).Should(Equal([]string{"trigger " + key, "resolve " + key}))
	g.Eventually(func(g Gomega) {
		alerts, err := am.Alerts()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(alerts).To(BeEmpty(), "the recovery resolves the alert")
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Eventually(stateless.actions, timeout, 50*time.Millisecond).Should(ContainElement("resolve " + "plumb/" + providerUID(g, ns.Name, "stateless") + "/Kustomization/" + ns.Name + "/shop"))

	// A success that ends nothing pages nobody, with or without notifyOn.
	event(g, ns.Name, "shop", "Normal", "ReconciliationSucceeded", "applied main@sha1:3")
	statelessBefore := len(stateless.actions())
	g.Consistently(pd.actions, time.Second, 100*time.Millisecond).Should(HaveLen(2))
	g.Expect(stateless.actions()).To(HaveLen(statelessBefore))
	for _, action := range stateless.actions()[:statelessBefore-1] {
		g.Expect(action).To(HavePrefix("trigger "), "without notifyOn every failure triggers (PagerDuty folds them into one incident)")
	}
}

func providerUID(g *WithT, ns, name string) string {
	p := &notifyv1.Provider{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
	return string(p.UID)
}

// A nats Provider publishes to the real nats-server, the password over TLS checked against
// certSecretRef's authority; the same Provider on a server without TLS keeps the password home.
func TestProvider_NATS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "nats-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	dir := t.TempDir()
	cert, key := notifytest.Certificate(t)
	g.Expect(os.WriteFile(filepath.Join(dir, "tls.crt"), cert, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "tls.key"), key, 0o600)).To(Succeed())
	auth := `authorization { user: plumb, password: s3cret }`
	secure := notifytest.StartNATS(t, auth+"\ntls { cert_file: \""+filepath.Join(dir, "tls.crt")+"\", key_file: \""+filepath.Join(dir, "tls.key")+"\" }")
	plain := notifytest.StartNATS(t, auth)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	sub, err := nats.Connect(secure.URL, nats.UserInfo("plumb", "s3cret"), nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	g.Expect(err).NotTo(HaveOccurred())
	defer sub.Close()
	received := make(chan *nats.Msg, 4)
	_, err = sub.ChanSubscribe("deploys."+ns.Name, received)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sub.Flush()).To(Succeed())

	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "nats", Namespace: ns.Name}, StringData: map[string]string{"username": "plumb", "password": "s3cret"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: ns.Name}, Data: map[string][]byte{"ca.crt": cert}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.NATSProvider, Address: secure.URL, Channel: "deploys." + ns.Name,
				SecretRef: &meta.LocalObjectReference{Name: "nats"}, CertSecretRef: &meta.LocalObjectReference{Name: "ca"}}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.NATSProvider, Address: plain.URL, Channel: "deploys." + ns.Name,
				SecretRef: &meta.LocalObjectReference{Name: "nats"}}},
	}
	for _, name := range []string{"secure", "plain"} {
		objs = append(objs, &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: name}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}})
	}
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"secure", "plain"} {
			a := &notifyv1.Alert{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, a)).To(Succeed())
			g.Expect(conditions.IsReady(a)).To(BeTrue())
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())

	event(g, ns.Name, "shop", "Warning", "BuildFailed", "kustomization.yaml: broken")
	var msg *nats.Msg
	g.Eventually(received, timeout).Should(Receive(&msg))
	var n notify.Notification
	g.Expect(json.Unmarshal(msg.Data, &n)).To(Succeed())
	g.Expect(n.Reason).To(Equal("BuildFailed"))
	g.Expect(n.Namespace).To(Equal(ns.Name))
	g.Eventually(func(g Gomega) {
		p := &notifyv1.Provider{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "plain"}, p)).To(Succeed())
		g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(notifyv1.DeliveryFailedReason))
		g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).To(And(ContainSubstring("offers no TLS"), Not(ContainSubstring("s3cret"))))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(received).NotTo(Receive(), "one message, from the secure Provider")
}
