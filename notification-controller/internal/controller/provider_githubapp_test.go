package controller

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/githubtest"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

// Two github Providers authenticate with one GitHub App through a proxySecretRef proxy: the
// loopback GitHub API issues one installation token (its JWT checked) and receives both commit
// statuses with it, all through the proxy. An app the API does not know, and a key that is no
// key, are AuthenticationFailed without the key in the message.
func TestProvider_GitHubAppThroughProxy(t *testing.T) {
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ghapp-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	api := githubtest.NewTLS(t)
	px := nettest.NewProxy(t, "proxy-user", "proxy-pa55")
	app := func(installation, key string) map[string]string {
		return map[string]string{"githubAppID": strconv.FormatInt(api.AppID, 10), "githubAppInstallationID": installation,
			"githubAppPrivateKey": key, "githubAppBaseURL": api.URL, "ca.crt": string(api.CAPEM)}
	}
	keyLine := string(api.PrivateKeyPEM[40:80])
	secret := func(name string, data map[string]string) client.Object {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name}, StringData: data}
	}
	provider := func(name, secretName string) client.Object {
		return &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GitHubProvider, Address: api.URL + "/acme/" + name,
				SecretRef:      &meta.LocalObjectReference{Name: secretName},
				CertSecretRef:  &meta.LocalObjectReference{Name: "app"},
				ProxySecretRef: &meta.LocalObjectReference{Name: "proxy"}}}
	}
	objs := []client.Object{
		secret("app", app(strconv.FormatInt(api.InstallationID, 10), string(api.PrivateKeyPEM))),
		secret("unknown", app("404", string(api.PrivateKeyPEM))),
		secret("nokey", app(strconv.FormatInt(api.InstallationID, 10), keyLine)),
		secret("proxy", map[string]string{"address": px.URL.String(), "username": "proxy-user", "password": "proxy-pa55"}),
		provider("one", "app"), provider("two", "app"), provider("unknown", "unknown"), provider("nokey", "nokey"),
	}
	for _, name := range []string{"one", "two", "unknown"} {
		objs = append(objs, &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: name}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}})
	}
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	get := func(g Gomega, name string) *notifyv1.Provider {
		p := &notifyv1.Provider{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, p)).To(Succeed())
		return p
	}
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.IsReady(get(g, "one"))).To(BeTrue())
		g.Expect(conditions.IsReady(get(g, "two"))).To(BeTrue())
		g.Expect(conditions.GetReason(get(g, "nokey"), meta.ReadyCondition)).To(Equal(notifyv1.AuthenticationFailedReason))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.GetMessage(get(g, "nokey"), meta.ReadyCondition)).To(ContainSubstring("`githubAppPrivateKey` is not a PEM RSA private key"))

	g.Expect(commitEvent(ctx, ns.Name, "shop")).To(Succeed())
	g.Eventually(func(g Gomega) {
		repos := map[string]string{}
		for _, s := range api.Statuses() {
			repos[s.Repo] = s.Authorization
			g.Expect(s.SHA).To(Equal("0123456789abcdef0123456789abcdef01234567"))
			g.Expect(s.Context).To(Equal("Kustomization/" + ns.Name + "/shop"))
		}
		g.Expect(repos).To(Equal(map[string]string{"acme/one": "Bearer " + api.Token(1), "acme/two": "Bearer " + api.Token(1)}))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(api.Issued()).To(HaveLen(1))
	g.Expect(api.Refused()).To(BeEmpty())
	g.Expect(px.Served(strings.TrimPrefix(api.URL, "https://"))).To(BeNumerically(">=", 1))

	g.Eventually(func(g Gomega) {
		p := get(g, "unknown")
		g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(notifyv1.AuthenticationFailedReason))
		g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).To(ContainSubstring("has no installation 404"))
		g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).NotTo(ContainSubstring(keyLine))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}
