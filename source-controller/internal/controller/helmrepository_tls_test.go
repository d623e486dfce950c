package controller

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/helm/helmtest"
)

// tlsChartRepo serves a chart repository over HTTPS on loopback with httptest's own
// certificate, which no system pool trusts, and returns the server and its CA in PEM.
func tlsChartRepo(t *testing.T, versions ...string) (*httptest.Server, []byte) {
	t.Helper()
	dir := t.TempDir()
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	for _, v := range versions {
		if _, err := helmtest.Package(dir, helmtest.Chart("web", v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := helmtest.Index(dir, srv.URL); err != nil {
		t.Fatal(err)
	}
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// otherCA is a self-signed CA certificate in PEM that signed nothing the tests serve.
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestHelmRepository_CertSecretRef(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	srv, ca := tlsChartRepo(t, "1.0.0")

	// Without the CA, the server's certificate is not trusted.
	obj := newHelmRepository(ns, srv.URL, "")
	create(g, obj)
	g.Expect(waitFailed(g, obj, sourcev1.IndexFetchFailedReason)).To(ContainSubstring("certificate"))

	// A certSecretRef naming a Secret that does not exist says which.
	update(g, obj, func() {
		obj.Spec.CertSecretRef = &meta.LocalObjectReference{Name: "tls-absent"}
	})
	g.Expect(waitFailed(g, obj, sourcev1.AuthenticationFailedReason)).To(ContainSubstring("TLS Secret " + ns + "/tls-absent not found"))

	// A kubernetes.io/tls-style Secret with ca.crt only, and a secretRef whose wrong ca.crt it
	// takes precedence over, as in Flux.
	tlsSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: ns}, Data: map[string][]byte{"ca.crt": ca}}
	g.Expect(k8s.Create(context.Background(), tlsSecret)).To(Succeed())
	basic := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "basic", Namespace: ns}, Data: map[string][]byte{"ca.crt": otherCA(t)}}
	g.Expect(k8s.Create(context.Background(), basic)).To(Succeed())
	update(g, obj, func() {
		obj.Spec.CertSecretRef = &meta.LocalObjectReference{Name: "tls"}
		obj.Spec.SecretRef = &meta.LocalObjectReference{Name: "basic"}
		obj.Spec.AccessFrom = &sourcev1.AccessFrom{NamespaceSelectors: []sourcev1.NamespaceSelector{{MatchLabels: map[string]string{"team": "a"}}}}
	})
	g.Expect(versionsOf(waitIndexReady(g, obj), "web")).To(Equal([]string{"1.0.0"}))

	// A HelmChart downloads the chart with the same CA.
	chart := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, obj.Name)
	create(g, chart)
	g.Eventually(func(g Gomega) {
		get(g, chart)
		g.Expect(conditions.IsReady(chart)).To(BeTrue(), "Ready: %v", conditions.GetMessage(chart, meta.ReadyCondition))
		g.Expect(chart.Status.Artifact).NotTo(BeNil())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(loadChart(g, chart.Status.Artifact).Metadata.Version).To(Equal("1.0.0"))

	// A client certificate without its key is refused with a message saying so.
	broken := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "half", Namespace: ns}, Data: map[string][]byte{"tls.crt": ca}}
	g.Expect(k8s.Create(context.Background(), broken)).To(Succeed())
	half := newHelmRepository(ns, srv.URL, "")
	half.Spec.CertSecretRef = &meta.LocalObjectReference{Name: "half"}
	create(g, half)
	g.Expect(waitFailed(g, half, sourcev1.AuthenticationFailedReason)).To(ContainSubstring("needs both tls.crt and tls.key"))
}

func TestHelmChart_SourceRefAPIVersion(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	srv := chartRepo(t, "1.0.0")
	repo := readyHelmRepository(t, g, ns, srv)

	good := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) {
		c.Spec.SourceRef.APIVersion = sourcev1.GroupVersion.String()
	})
	create(g, good)
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.IsReady(get(g, good))).To(BeTrue(), "Ready: %v", conditions.GetMessage(good, meta.ReadyCondition))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	flux := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) {
		c.Spec.SourceRef.APIVersion = "source.toolkit.fluxcd.io/v1"
	})
	create(g, flux)
	g.Expect(waitFailed(g, flux, sourcev1.InvalidSpecReason)).To(ContainSubstring(`spec.sourceRef.apiVersion "source.toolkit.fluxcd.io/v1"`))
	g.Expect(conditions.IsStalled(flux)).To(BeTrue())
}
