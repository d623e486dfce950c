package controller

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
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
