package controller

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// hit is one request a servicesSink got.
type hit struct {
	method, path string
	header       http.Header
	body         string
}

// servicesSink stands in for every chat and observability service at once: the paths of
// their APIs do not overlap. It answers 401 on /v1/refused, and 200 with a body that both
// Telegram's and Lark's senders read as accepted elsewhere.
type servicesSink struct {
	mu   sync.Mutex
	hits []hit
}

func (s *servicesSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.hits = append(s.hits, hit{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: string(b)})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/v1/refused" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"message":"The request requires a valid access token set in the Authorization request header."}`)
		return
	}
	_, _ = io.WriteString(w, `{"ok":true,"code":0}`)
}

func (s *servicesSink) got() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits...)
}

// paths are the method and path of every request got.
func (s *servicesSink) paths() []string {
	var out []string
	for _, h := range s.got() {
		out = append(out, h.method+" "+h.path)
	}
	return out
}

func (s *servicesSink) at(path string) hit {
	for _, h := range s.got() {
		if strings.HasPrefix(h.path, path) {
			return h
		}
	}
	return hit{}
}

// Each chat and observability type delivers an Alert's event through the controller, with the
// keys of its Secret where its API wants them: the token-bearing types over https (the
// Provider's certSecretRef trusts the stand-in), the webhook types over loopback http. A
// refusal of the service shows on the Provider; a Provider that lacks what its type needs is
// not Ready, and says why.
func TestProvider_ChatTypesThroughAnAlert(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "chat-types-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	tlsSink, plainSink := &servicesSink{}, &servicesSink{}
	tlsSrv := httptest.NewTLSServer(tlsSink)
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(plainSink)
	defer plainSrv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	dsn := strings.Replace(tlsSrv.URL, "https://", "https://sentrykey@", 1) + "/42"

	secret := func(name string, data map[string]string) client.Object {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name}, StringData: data}
	}
	ref := func(name string) *meta.LocalObjectReference { return &meta.LocalObjectReference{Name: name} }
	provider := func(name, typ, address, channel, secretName string) *notifyv1.Provider {
		p := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: typ, Address: address, Channel: channel}}
		if secretName != "" {
			p.Spec.SecretRef = ref(secretName)
		}
		if strings.HasPrefix(address, "https://") || typ == notifyv1.SentryProvider {
			p.Spec.CertSecretRef = ref("ca")
		}
		return p
	}
	delivering := []*notifyv1.Provider{
		provider("googlechat", notifyv1.GoogleChatProvider, plainSrv.URL+"/v1/spaces/AAA/messages?key=k&token=t", "", ""),
		provider("rocket", notifyv1.RocketProvider, plainSrv.URL+"/hooks/rocket/tok", "#deploys", ""),
		provider("mattermost", notifyv1.MattermostProvider, plainSrv.URL+"/hooks/mm", "", ""),
		provider("lark", notifyv1.LarkProvider, plainSrv.URL+"/open-apis/bot/v2/hook/lark", "", "lark"),
		provider("telegram", notifyv1.TelegramProvider, tlsSrv.URL, "-100123:7", "telegram"),
		provider("matrix", notifyv1.MatrixProvider, tlsSrv.URL, "!room:example.org", "bearer"),
		provider("webex", notifyv1.WebexProvider, tlsSrv.URL+"/v1/messages", "Y2lzY29", "bearer"),
		provider("zulip", notifyv1.ZulipProvider, tlsSrv.URL, "ops/deploys", "zulip"),
		provider("grafana", notifyv1.GrafanaProvider, tlsSrv.URL+"/api/annotations", "", "bearer"),
		provider("datadog", notifyv1.DatadogProvider, tlsSrv.URL, "", "datadog"),
		provider("sentry", notifyv1.SentryProvider, "", "prod", "sentry"),
		provider("webex-refused", notifyv1.WebexProvider, tlsSrv.URL+"/v1/refused", "Y2lzY29", "bearer"),
	}
	objs := []client.Object{
		secret("ca", map[string]string{"ca.crt": string(ca)}),
		secret("lark", map[string]string{"token": "s1gn"}),
		secret("telegram", map[string]string{"token": "123:bot-token"}),
		secret("bearer", map[string]string{"token": "bearer-token"}),
		secret("zulip", map[string]string{"username": "bot@example.org", "password": "zulip-key"}),
		secret("datadog", map[string]string{"token": "dd-key"}),
		secret("sentry", map[string]string{"address": dsn}),
		secret("empty", map[string]string{"other": "x"}),
		provider("matrix-alias", notifyv1.MatrixProvider, tlsSrv.URL, "#deploys:example.org", "bearer"),
		provider("telegram-no-token", notifyv1.TelegramProvider, "", "-100123", "empty"),
	}
	for _, p := range delivering {
		objs = append(objs, p, &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns.Name},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: p.Name}, EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}}}})
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
		for _, p := range delivering {
			got := get(g, p.Name)
			g.Expect(conditions.IsReady(got)).To(BeTrue(), "%s: %s", p.Name, conditions.GetMessage(got, meta.ReadyCondition))
			a := &notifyv1.Alert{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: p.Name}, a)).To(Succeed())
			g.Expect(conditions.IsReady(a)).To(BeTrue(), p.Name)
		}
		alias := get(g, "matrix-alias")
		g.Expect(conditions.GetReason(alias, meta.ReadyCondition)).To(Equal(notifyv1.InvalidProviderReason))
		g.Expect(conditions.GetMessage(alias, meta.ReadyCondition)).To(ContainSubstring("room ID (!<id>:<server>)"))
		noToken := get(g, "telegram-no-token")
		g.Expect(conditions.GetReason(noToken, meta.ReadyCondition)).To(Equal(notifyv1.SecretNotFoundReason))
		g.Expect(conditions.GetMessage(noToken, meta.ReadyCondition)).To(ContainSubstring("the Secret's token key"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	event(g, ns.Name, "shop", "Warning", "BuildFailed", "kustomize build ./apps: accumulating resources")
	g.Eventually(plainSink.paths, timeout, 50*time.Millisecond).Should(ConsistOf(
		"POST /v1/spaces/AAA/messages", "POST /hooks/rocket/tok", "POST /hooks/mm", "POST /open-apis/bot/v2/hook/lark"))
	g.Eventually(tlsSink.paths, timeout, 50*time.Millisecond).Should(ConsistOf(
		"POST /bot123:bot-token/sendMessage",
		MatchRegexp(`^PUT /_matrix/client/v3/rooms/!room:example.org/send/m\.room\.message/plumb-[0-9a-f]{32}$`),
		"POST /v1/messages", "POST /api/v1/messages", "POST /api/annotations", "POST /api/v1/events", "POST /api/42/envelope/",
		"POST /v1/refused", // 401: not retried
	))

	// Each Secret key went where its type's API wants it.
	g.Expect(tlsSink.at("/_matrix/").header.Get("Authorization")).To(Equal("Bearer bearer-token"))
	g.Expect(tlsSink.at("/v1/messages").header.Get("Authorization")).To(Equal("Bearer bearer-token"))
	g.Expect(tlsSink.at("/api/annotations").header.Get("Authorization")).To(Equal("Bearer bearer-token"))
	g.Expect(tlsSink.at("/api/v1/messages").header.Get("Authorization")).To(Equal("Basic " + base64.StdEncoding.EncodeToString([]byte("bot@example.org:zulip-key"))))
	g.Expect(tlsSink.at("/api/v1/events").header.Get("DD-API-KEY")).To(Equal("dd-key"))
	g.Expect(tlsSink.at("/api/42/envelope/").header.Get("X-Sentry-Auth")).To(ContainSubstring("sentry_key=sentrykey"))
	g.Expect(tlsSink.at("/api/42/envelope/").body).To(ContainSubstring(`"environment":"prod"`), "the channel is Sentry's environment")
	g.Expect(tlsSink.at("/bot").body).To(And(ContainSubstring(`"chat_id":"-100123"`), ContainSubstring(`"message_thread_id":7`)))
	g.Expect(plainSink.at("/open-apis/").body).To(ContainSubstring(`"sign":`), "the Secret's token signs Lark's message")
	g.Expect(plainSink.at("/hooks/rocket/").body).To(ContainSubstring(`"channel":"#deploys"`))
	g.Expect(plainSink.at("/v1/spaces/").body).To(ContainSubstring(`"cardsV2"`))

	g.Eventually(func(g Gomega) {
		p := get(g, "webex-refused")
		g.Expect(conditions.GetReason(p, meta.ReadyCondition)).To(Equal(notifyv1.DeliveryFailedReason))
		g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).To(ContainSubstring("401 Unauthorized: The request requires a valid access token"))
		g.Expect(conditions.GetMessage(p, meta.ReadyCondition)).NotTo(ContainSubstring("bearer-token"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// What each type needs, and the message of what a Provider lacks.
func TestProvider_ChatTypesNeeds(t *testing.T) {
	cases := []struct {
		typ, address, channel, username string
		data                            map[string]string
		want                            string // "" for a sender
		secret                          bool   // the want is about the Secret
		user                            string // the sender's username, when set
	}{
		{typ: notifyv1.GoogleChatProvider, want: "googlechat needs an address (the space's incoming webhook URL)"},
		{typ: notifyv1.GoogleChatProvider, address: "https://chat.googleapis.com/v1/spaces/A/messages"},
		{typ: notifyv1.TelegramProvider, data: map[string]string{"token": "t"}, want: "telegram needs spec.channel"},
		{typ: notifyv1.TelegramProvider, channel: "-100:topic", data: map[string]string{"token": "t"}, want: "the topic after ':' must be a number"},
		{typ: notifyv1.TelegramProvider, channel: "@team", want: "telegram needs the bot's token", secret: true},
		{typ: notifyv1.TelegramProvider, channel: "@team", data: map[string]string{"token": "t"}},
		{typ: notifyv1.MatrixProvider, channel: "!r:x", data: map[string]string{"token": "t"}, want: "matrix needs an address (the homeserver's URL)"},
		{typ: notifyv1.MatrixProvider, address: "https://m.org", channel: "#r:x", data: map[string]string{"token": "t"}, want: "room ID"},
		{typ: notifyv1.MatrixProvider, address: "https://m.org", channel: "!r:x", want: "matrix needs an access token", secret: true},
		{typ: notifyv1.MatrixProvider, address: "https://m.org", channel: "!r:x", data: map[string]string{"token": "t"}},
		{typ: notifyv1.RocketProvider, want: "rocket needs an address"},
		{typ: notifyv1.MattermostProvider, want: "mattermost needs an address"},
		{typ: notifyv1.MattermostProvider, address: "https://mm.example.org/hooks/x"},
		{typ: notifyv1.MattermostProvider, address: "https://mm.example.org/hooks/x", username: "spec", data: map[string]string{"username": "secret"}, user: "secret"},
		{typ: notifyv1.RocketProvider, address: "https://rc.example.org/hooks/x", username: "spec", user: "spec"},
		{typ: notifyv1.WebexProvider, data: map[string]string{"token": "t"}, want: "webex needs spec.channel"},
		{typ: notifyv1.WebexProvider, channel: "room", want: "webex needs the bot's access token", secret: true},
		{typ: notifyv1.WebexProvider, channel: "room", data: map[string]string{"token": "t"}},
		{typ: notifyv1.LarkProvider, want: "lark needs an address"},
		{typ: notifyv1.LarkProvider, address: "https://open.larksuite.com/open-apis/bot/v2/hook/x"},
		{typ: notifyv1.ZulipProvider, channel: "a/b", want: "zulip needs an address"},
		{typ: notifyv1.ZulipProvider, address: "https://z.org", channel: "a", want: "<channel>/<topic>"},
		{typ: notifyv1.ZulipProvider, address: "https://z.org", channel: "a/b", data: map[string]string{"username": "bot@z.org"}, want: "zulip needs the bot's email", secret: true},
		{typ: notifyv1.ZulipProvider, address: "https://z.org", channel: "a/b", username: "bot@z.org", data: map[string]string{"password": "k"}},
		{typ: notifyv1.GrafanaProvider, want: "grafana needs an address"},
		{typ: notifyv1.GrafanaProvider, address: "https://g.org/api/annotations"},
		{typ: notifyv1.DatadogProvider, want: "datadog needs an API key", secret: true},
		{typ: notifyv1.DatadogProvider, data: map[string]string{"token": "k"}},
		{typ: notifyv1.SentryProvider, want: "sentry needs an address"},
		{typ: notifyv1.SentryProvider, address: "https://sentry.example.org/1", want: "the Sentry DSN is not valid: empty username"},
		{typ: notifyv1.SentryProvider, address: "https://k@sentry.example.org/1"},
	}
	for _, tc := range cases {
		t.Run(tc.typ+"/"+tc.want, func(t *testing.T) {
			g := NewWithT(t)
			data := map[string][]byte{}
			for k, v := range tc.data {
				data[k] = []byte(v)
			}
			p := &notifyv1.Provider{Spec: notifyv1.ProviderSpec{Type: tc.typ, Channel: tc.channel, Username: tc.username}}
			s, err := senderOf(senderConfig{Provider: p, Address: tc.address, Token: tc.data["token"], Data: data})
			if tc.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s).NotTo(BeNil())
				if tc.user != "" {
					g.Expect(s).To(HaveField("Username", tc.user), "the Secret's username wins over spec.username")
				}
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			var se *secretError
			g.Expect(errors.As(err, &se)).To(Equal(tc.secret), "SecretNotFound only for what the Secret lacks")
		})
	}
}

// A type whose credentials are optional (grafana: a token, basic auth, or none for an open
// Grafana) is refused plain HTTP only when its Secret gives it credentials to send.
func TestProvider_OptionalCredentialsOverPlainHTTP(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "grafana-http-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	for name, data := range map[string]map[string]string{
		"token": {"token": "glsa_s3cret"}, "basic": {"username": "admin", "password": "s3cret"}, "none": {"other": "x"},
	} {
		g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name}, StringData: data})).To(Succeed())
	}
	grafana := func(address, secretName string) *notifyv1.Provider {
		return &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "grafana", Namespace: ns.Name},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.GrafanaProvider, Address: address, SecretRef: &meta.LocalObjectReference{Name: secretName}}}
	}
	var ph *plainHTTPError
	for secretName, refused := range map[string]bool{"token": true, "basic": true, "none": false} {
		_, err := SenderFor(ctx, k8s, grafana("http://10.0.0.1:3000/api/annotations", secretName), SenderOptions{})
		g.Expect(errors.As(err, &ph)).To(Equal(refused), "%s: %v", secretName, err)
		_, err = SenderFor(ctx, k8s, grafana("https://10.0.0.1:3000/api/annotations", secretName), SenderOptions{})
		g.Expect(err).NotTo(HaveOccurred(), "%s over https", secretName)
		_, err = SenderFor(ctx, k8s, grafana("http://10.0.0.1:3000/api/annotations", secretName), SenderOptions{AllowInsecureHTTP: true})
		g.Expect(err).NotTo(HaveOccurred(), "%s with --provider-allow-insecure-http", secretName)
	}
}
