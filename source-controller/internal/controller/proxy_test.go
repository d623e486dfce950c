package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/gitauth"
	"github.com/plumb-dev/plumb/shared/proxy"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

const (
	proxyUser     = "proxy-user"
	proxyPassword = "proxy-pass-4711"
)

// newProxy starts a loopback proxy that asks for proxyUser and proxyPassword, and clears
// NO_PROXY so that the loopback remotes are not excluded from it.
func newProxy(t *testing.T) *nettest.Proxy {
	t.Helper()
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	return nettest.NewProxy(t, proxyUser, proxyPassword)
}

// proxySecret creates a proxySecretRef Secret for the proxy with the password.
func proxySecret(t *testing.T, ns string, p *nettest.Proxy, password string) *meta.LocalObjectReference {
	t.Helper()
	return &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{
		"address": p.URL.String(), "username": proxyUser, "password": password,
	})}
}

// expectProxyFailed checks a ProxyFailed message: it names the proxy, and no event or message
// quotes the proxy password.
func expectProxyFailed(t *testing.T, g *WithT, ns string, obj sourceObject, p *nettest.Proxy) {
	t.Helper()
	msg := waitFailed(g, obj, sourcev1.ProxyFailedReason)
	g.Expect(msg).To(ContainSubstring(p.Addr))
	g.Expect(msg).NotTo(ContainSubstring(proxyPassword))
	var events eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	for _, e := range events.Items {
		g.Expect(e.Note).NotTo(ContainSubstring(proxyPassword))
	}
}

func TestOCIRepository_Proxy(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	px := newProxy(t)
	reg := newRegistry(t, nil)
	digest := pushFiles(t, reg.Host, "org/app", "latest", map[string]string{"a.yaml": "kind: ConfigMap\n"})

	obj := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", func(o *sourcev1.OCIRepository) {
		o.Spec.ProxySecretRef = proxySecret(t, ns, px, proxyPassword)
	})
	create(g, obj)
	waitReady(g, obj, "latest@"+digest)
	g.Expect(px.Served(reg.Host)).To(BeNumerically(">", 0), "the registry was reached through the proxy")

	wrong := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", func(o *sourcev1.OCIRepository) {
		o.Spec.ProxySecretRef = proxySecret(t, ns, px, "wrong-"+proxyPassword)
	})
	create(g, wrong)
	expectProxyFailed(t, g, ns, wrong, px)

	missing := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", func(o *sourcev1.OCIRepository) {
		o.Spec.ProxySecretRef = &meta.LocalObjectReference{Name: "absent"}
	})
	create(g, missing)
	g.Expect(waitFailed(g, missing, sourcev1.ProxyFailedReason)).To(ContainSubstring("proxy Secret " + ns + "/absent not found"))
}

func TestGitRepository_Proxy(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	px := newProxy(t)
	repo := newRepo(t, map[string]string{"app/deploy.yaml": "kind: ConfigMap\n"})
	head, _ := repo.repo.Head()
	gitHost := strings.TrimPrefix(gitServer.HTTPAddress(), "http://")

	obj := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "main"})
	obj.Spec.ProxySecretRef = proxySecret(t, ns, px, proxyPassword)
	create(g, obj)
	waitReady(g, obj, "main@sha1:"+head.Hash().String())
	// The listing and the fetch, each through the proxy.
	g.Expect(px.Served(gitHost)).To(BeNumerically(">=", 2))

	wrong := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "main"})
	wrong.Spec.ProxySecretRef = proxySecret(t, ns, px, "wrong-"+proxyPassword)
	create(g, wrong)
	expectProxyFailed(t, g, ns, wrong, px)

	ssh := newGitRepository(ns, "ssh://git@127.0.0.1:22/org/repo.git", "", nil)
	ssh.Spec.ProxySecretRef = proxySecret(t, ns, px, proxyPassword)
	create(g, ssh)
	g.Expect(waitFailed(g, ssh, sourcev1.InvalidSpecReason)).To(ContainSubstring("proxySecretRef applies to http(s) URLs only"))
}

// Listings are shared between objects under remoteKey: objects that reach the remote through
// another proxy, or none, must not share them.
func TestRemoteKey_HoldsTheProxy(t *testing.T) {
	secret := map[string][]byte{"username": []byte("u"), "password": []byte("p")}
	a, _ := proxy.Parse("http://127.0.0.1:3128", "u", "one")
	b, _ := proxy.Parse("http://127.0.0.1:3128", "u", "two")
	c, _ := proxy.Parse("http://127.0.0.1:3129", "u", "one")
	keys := map[string]bool{}
	for _, px := range []*proxy.Proxy{nil, a, b, c} {
		keys[remoteKey("http://127.0.0.1/repo.git", gitauth.Source{Secret: secret, Proxy: px})] = true
	}
	if len(keys) != 4 {
		t.Fatalf("%d distinct keys for 4 ways to reach the remote", len(keys))
	}
	again, _ := proxy.Parse("http://127.0.0.1:3128", "u", "one")
	if remoteKey("http://127.0.0.1/repo.git", gitauth.Source{Secret: secret, Proxy: a}) != remoteKey("http://127.0.0.1/repo.git", gitauth.Source{Secret: secret, Proxy: again}) {
		t.Fatal("the key is not stable")
	}
	// Azure identities of two ServiceAccounts, or of two namespaces, do not share listings.
	azure := map[string]bool{}
	for _, src := range []gitauth.Source{{Provider: "azure"}, {Provider: "azure", Namespace: "a", ServiceAccountName: "sa"},
		{Provider: "azure", Namespace: "b", ServiceAccountName: "sa"}, {Provider: "azure", Namespace: "a", ServiceAccountName: "other"}} {
		azure[remoteKey("https://dev.azure.com/o/p/_git/r", src)] = true
	}
	if len(azure) != 4 {
		t.Fatalf("%d distinct keys for 4 azure identities", len(azure))
	}
}

func TestHelmRepository_Proxy(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	px := newProxy(t)
	srv := chartRepo(t, "1.0.0")
	host := srv.Listener.Addr().String()

	obj := newHelmRepository(ns, srv.URL, chartSecret(t, ns, chartUser, chartPassword))
	obj.Spec.ProxySecretRef = proxySecret(t, ns, px, proxyPassword)
	create(g, obj)
	g.Expect(versionsOf(waitIndexReady(g, obj), "web")).To(Equal([]string{"1.0.0"}))
	g.Expect(px.Served(host)).To(BeNumerically(">", 0), "the index was downloaded through the proxy")

	// A HelmChart of the repository downloads its chart through the repository's proxy.
	served := px.Served(host)
	chart := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, obj.Name)
	create(g, chart)
	waitReady(g, chart, "1.0.0")
	g.Expect(px.Served(host)).To(BeNumerically(">", served), "the chart was downloaded through the proxy")

	wrong := newHelmRepository(ns, srv.URL, chartSecret(t, ns, chartUser, chartPassword))
	wrong.Spec.ProxySecretRef = proxySecret(t, ns, px, "wrong-"+proxyPassword)
	create(g, wrong)
	expectProxyFailed(t, g, ns, wrong, px)
}
