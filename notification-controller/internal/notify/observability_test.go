package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// What Grafana, Datadog and Sentry get, checked as their APIs document the request.

func TestGrafanaAnnotation(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"id":1,"message":"Annotation added"}`)
	at := sample
	at.Time = time.UnixMilli(1700000000123)

	g.Expect((&Grafana{URL: u + "/api/annotations", Token: "glsa_token"}).Send(context.Background(), at)).To(Succeed())
	r := svc.last(t)
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/api/annotations"))
	g.Expect(r.Header.Get("Authorization")).To(Equal("Bearer glsa_token"))
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(r.jsonBody(t)).To(Equal(map[string]any{
		"time": 1700000000123.0,
		"tags": []any{"plumb", "flux", "apply-controller", "kind: Kustomization", "name: api", "namespace: shop",
			"reason: Succeeded", "severity: info", "cluster: eu-1"},
		"text": "✅ Kustomization/shop/api — Succeeded\nDeployment/shop/api configured\nrevision: main@sha1:1a2b3c4d5e6f\nsummary: prod\ncluster: eu-1",
	}))

	// Basic auth when there is no token; Grafana's base URL gets the API's path; ':' in a tag's
	// key or value is written '|', as Flux does.
	n := sample
	n.Metadata = map[string]string{"image": "ghcr.io/team/app:v1"}
	g.Expect((&Grafana{URL: u + "/grafana/", Username: "admin", Password: "pw"}).Send(context.Background(), n)).To(Succeed())
	r = svc.last(t)
	g.Expect(r.Path).To(Equal("/grafana/api/annotations"))
	g.Expect(r.User + ":" + r.Password).To(Equal("admin:pw"))
	g.Expect(r.jsonBody(t)["tags"]).To(ContainElement("image: ghcr.io/team/app|v1"))

	g.Expect((&Grafana{URL: u}).Send(context.Background(), n)).To(Succeed())
	g.Expect(svc.last(t).Header.Get("Authorization")).To(BeEmpty(), "an open Grafana gets no credentials")
}

func TestDatadogEvent(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"status":"ok","event":{"id":1}}`)
	s := &Datadog{Site: u + "/", APIKey: "dd-api-key"}
	n := failedSample
	n.Time = time.Unix(1700000000, 0)
	n.Metadata = map[string]string{"Env": "Prod"}
	g.Expect(s.Send(context.Background(), n)).To(Succeed())
	r := svc.last(t)
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/api/v1/events"))
	g.Expect(r.Header.Get("DD-API-KEY")).To(Equal("dd-api-key"))
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(r.jsonBody(t)).To(Equal(map[string]any{
		"title": "Kustomization/shop/api: BuildFailed",
		"text": "%%%\n❌ **Kustomization/shop/api** — BuildFailed\n" + failedSample.Message + "\n\n" +
			"**revision**: `main@sha1:1a2b3c4d5e6f`\n**summary**: prod\n**Env**: Prod\n%%%",
		"tags": []any{"flux_reporting_controller:apply-controller", "flux_reason:buildfailed", "kube_kind:kustomization",
			"kube_name:api", "kube_namespace:shop", "env:prod"},
		"alert_type":       "error",
		"date_happened":    1700000000.0,
		"source_type_name": "fluxcd",
		"aggregation_key":  "Kustomization/shop/api",
	}))

	g.Expect((&Datadog{Site: u, APIKey: "k"}).Send(context.Background(), sample)).To(Succeed())
	g.Expect(svc.last(t).jsonBody(t)).To(HaveKeyWithValue("alert_type", "info"))
	g.Expect(DatadogSite).To(Equal("https://api.datadoghq.com"))
}

// envelope is a Sentry envelope as its documentation describes it: a header line, then per
// item a header line and a payload of the header's length.
type envelope struct {
	header     map[string]any
	itemHeader map[string]any
	payload    []byte
}

func readEnvelope(t *testing.T, body []byte) envelope {
	t.Helper()
	g := NewWithT(t)
	head, rest, ok := bytes.Cut(body, []byte("\n"))
	g.Expect(ok).To(BeTrue())
	itemHead, rest, ok := bytes.Cut(rest, []byte("\n"))
	g.Expect(ok).To(BeTrue())
	var e envelope
	g.Expect(json.Unmarshal(head, &e.header)).To(Succeed())
	g.Expect(json.Unmarshal(itemHead, &e.itemHeader)).To(Succeed())
	n := int(e.itemHeader["length"].(float64))
	g.Expect(len(rest)).To(BeNumerically(">=", n))
	e.payload = rest[:n]
	g.Expect(strings.TrimSpace(string(rest[n:]))).To(BeEmpty(), "one item")
	return e
}

func TestSentryEnvelope(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"id":"1"}`, reply{status: http.StatusInternalServerError})
	dsn := strings.Replace(u, "http://", "http://publickey@", 1) + "/42"
	s, err := NewSentry(dsn, "staging", nil)
	g.Expect(err).NotTo(HaveOccurred())

	var re *RetryableError
	g.Expect(errors.As(s.Send(context.Background(), failedSample), &re)).To(BeTrue())
	g.Expect(s.Send(context.Background(), failedSample)).To(Succeed())
	got := svc.requests()
	r := got[1]
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/api/42/envelope/"))
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/x-sentry-envelope"))
	g.Expect(r.Header.Get("X-Sentry-Auth")).To(Equal("Sentry sentry_version=7, sentry_client=plumb-notification-controller/1, sentry_key=publickey"))
	e := readEnvelope(t, r.Body)
	g.Expect(e.itemHeader).To(HaveKeyWithValue("type", "event"))
	var ev map[string]any
	g.Expect(json.Unmarshal(e.payload, &ev)).To(Succeed())
	g.Expect(ev["event_id"]).To(MatchRegexp("^[0-9a-f]{32}$"))
	g.Expect(e.header).To(HaveKeyWithValue("event_id", ev["event_id"]))
	g.Expect(readEnvelope(t, got[0].Body).header).To(HaveKeyWithValue("event_id", ev["event_id"]), "a retry has the same event ID, so Sentry shows it once")
	g.Expect(ev).To(And(
		HaveKeyWithValue("level", "error"),
		HaveKeyWithValue("message", failedSample.Message),
		HaveKeyWithValue("transaction", "Kustomization/shop/api"),
		HaveKeyWithValue("environment", "staging"),
		HaveKeyWithValue("logger", "apply-controller"),
		HaveKeyWithValue("timestamp", "1970-01-01T00:00:00Z"),
		HaveKeyWithValue("fingerprint", []any{"plumb", "Kustomization", "shop", "api", "BuildFailed"}),
		HaveKeyWithValue("tags", map[string]any{
			"flux_involved_object_kind": "Kustomization", "flux_involved_object_namespace": "shop", "flux_involved_object_name": "api",
			"flux_reporting_controller": "apply-controller", "flux_reason": "BuildFailed", "cluster": "eu-1",
		}),
		HaveKeyWithValue("contexts", HaveKeyWithValue("plumb", map[string]any{"revision": "main@sha1:1a2b3c4d5e6f", "summary": "prod", "cluster": "eu-1"})),
	))
	g.Expect(ev).NotTo(HaveKey("type"))

	// Info is a transaction, with a trace context.
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	e = readEnvelope(t, svc.last(t).Body)
	g.Expect(e.itemHeader).To(HaveKeyWithValue("type", "transaction"))
	ev = nil
	g.Expect(json.Unmarshal(e.payload, &ev)).To(Succeed())
	g.Expect(ev).To(And(HaveKeyWithValue("type", "transaction"), HaveKeyWithValue("transaction", "Kustomization/shop/api"),
		HaveKeyWithValue("start_timestamp", "1970-01-01T00:00:00Z"), HaveKeyWithValue("timestamp", "1970-01-01T00:00:00Z")))
	g.Expect(ev["contexts"]).To(HaveKeyWithValue("trace", And(
		HaveKeyWithValue("trace_id", MatchRegexp("^[0-9a-f]{32}$")), HaveKeyWithValue("span_id", MatchRegexp("^[0-9a-f]{16}$")),
		HaveKeyWithValue("op", "plumb.event"), HaveKeyWithValue("status", "ok"))))
	g.Expect(ev).NotTo(HaveKey("level"))

	// A DSN's secret key goes along; a bad DSN is refused without showing it.
	secretDSN := strings.Replace(u, "http://", "http://pub:s3cr3t@", 1) + "/sub/7"
	s, err = NewSentry(secretDSN, "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	g.Expect(svc.last(t).Path).To(Equal("/sub/api/7/envelope/"))
	g.Expect(svc.last(t).Header.Get("X-Sentry-Auth")).To(HaveSuffix("sentry_key=pub, sentry_secret=s3cr3t"))
	for _, bad := range []string{"https://s3cr3tkey@sentry.example.org", "ftp://s3cr3tkey@sentry.example.org/1", "https://sentry.example.org/1", "https://s3cr3tkey@%zz/1"} {
		_, err := NewSentry(bad, "", nil)
		g.Expect(err).To(MatchError(ContainSubstring("the Sentry DSN is not valid")), bad)
		g.Expect(err.Error()).NotTo(ContainSubstring("s3cr3tkey"))
	}
}

// Grafana's basic auth header is the standard one.
func TestGrafanaBasicAuthHeader(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{}`)
	g.Expect((&Grafana{URL: u, Username: "a", Password: "b"}).Send(context.Background(), sample)).To(Succeed())
	g.Expect(svc.last(t).Header.Get("Authorization")).To(Equal("Basic " + base64.StdEncoding.EncodeToString([]byte("a:b"))))
}
