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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// forwardProxy stands in for an HTTP proxy: it notes the absolute URLs it is asked for and
// answers them itself, with the chat sink.
type forwardProxy struct {
	mu   sync.Mutex
	urls []string
	sink *chatSink
}

func (p *forwardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.urls = append(p.urls, r.URL.String())
	p.mu.Unlock()
	p.sink.ServeHTTP(w, r)
}

func (p *forwardProxy) asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.urls...)
}

// A Provider trusts the certificate authorities of its certSecretRef, and goes through its proxy.
func TestProvider_CertSecretRefAndProxy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "providers-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())

	tlsSink := &chatSink{}
	tlsSrv := httptest.NewTLSServer(tlsSink) // a certificate no system trusts
	defer tlsSrv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	proxy := &forwardProxy{sink: &chatSink{}}
	proxySrv := httptest.NewServer(proxy)
	defer proxySrv.Close()

	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: ns.Name}, Data: map[string][]byte{"ca.crt": ca}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad-ca", Namespace: ns.Name}, Data: map[string][]byte{"ca.crt": []byte("not PEM")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "proxy", Namespace: ns.Name}, Data: map[string][]byte{"proxy": []byte(proxySrv.URL)}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "trusted", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: tlsSrv.URL, CertSecretRef: &meta.LocalObjectReference{Name: "ca"}}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "untrusted", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: tlsSrv.URL}},
		// Nothing listens on port 9 of loopback: only the proxy can deliver.
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "proxied", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: "http://127.0.0.1:9/hook", Proxy: proxySrv.URL}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "proxied-by-secret", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: "http://127.0.0.1:9/from-secret", Proxy: "http://127.0.0.1:9",
				SecretRef: &meta.LocalObjectReference{Name: "proxy"}}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "bad-ca", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: tlsSrv.URL, CertSecretRef: &meta.LocalObjectReference{Name: "bad-ca"}}},
		&notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "no-ca", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: tlsSrv.URL, CertSecretRef: &meta.LocalObjectReference{Name: "absent"}}},
	}
	for _, name := range []string{"trusted", "untrusted", "proxied", "proxied-by-secret"} {
		objs = append(objs, &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: name}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}})
	}
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	provider := func(name string) *notifyv1.Provider {
		p := &notifyv1.Provider{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, p)).To(Succeed())
		return p
	}
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"trusted", "untrusted", "proxied", "proxied-by-secret"} {
			g.Expect(conditions.IsReady(provider(name))).To(BeTrue(), name)
		}
		bad := provider("bad-ca")
		g.Expect(conditions.IsReady(bad)).To(BeFalse())
		g.Expect(conditions.GetMessage(bad, meta.ReadyCondition)).To(ContainSubstring("ca.crt holds no PEM certificate"))
		g.Expect(conditions.GetReason(provider("no-ca"), meta.ReadyCondition)).To(Equal(notifyv1.SecretNotFoundReason))
		for _, name := range []string{"trusted", "untrusted", "proxied", "proxied-by-secret"} {
			a := &notifyv1.Alert{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, a)).To(Succeed())
			g.Expect(conditions.IsReady(a)).To(BeTrue(), name)
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())

	event(g, ns.Name, "shop", "Normal", "Succeeded", "Deployment/shop/api configured")
	g.Eventually(tlsSink.received, timeout, 50*time.Millisecond).Should(HaveLen(1), "the trusted Provider did not deliver")
	g.Eventually(proxy.asked, timeout, 50*time.Millisecond).Should(ConsistOf("http://127.0.0.1:9/hook", "http://127.0.0.1:9/from-secret"))
	g.Eventually(func(g Gomega) {
		p := provider("untrusted")
		g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(notifyv1.DeliveryFailedReason))
		g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).To(ContainSubstring("certificate"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(tlsSink.received()).To(HaveLen(1), "the untrusted Provider delivered")
}
