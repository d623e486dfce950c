package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/testing/notifytest"
)

// failing, recovered and changed are the three notifications an incident service tells apart.
var (
	failing = func() Notification {
		n := sample
		n.Severity, n.Reason, n.Message = "error", "HealthCheckFailed", "Deployment/shop/api not ready\nwaited 5m"
		return n
	}()
	recovered = func() Notification {
		n := sample
		n.Recovers = []string{"HealthCheckFailed"}
		return n
	}()
	changed = sample
)

// pdEvent is an Events API v2 event as PagerDuty documents it: decoding refuses any other
// field.
type pdEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Client      string `json:"client"`
	Payload     *struct {
		Summary       string         `json:"summary"`
		Source        string         `json:"source"`
		Severity      string         `json:"severity"`
		Timestamp     string         `json:"timestamp"`
		Component     string         `json:"component"`
		Group         string         `json:"group"`
		Class         string         `json:"class"`
		CustomDetails map[string]any `json:"custom_details"`
	} `json:"payload"`
}

// pagerDutySink is a loopback Events API v2: it checks each event against the documented
// schema (POST /v2/enqueue, JSON, a 32-character routing key, a known action, a payload with
// summary, source and severity for a trigger, dedup_key within 255 characters) and answers as
// PagerDuty does; statuses given are answered first, with its error object.
type pagerDutySink struct {
	mu       sync.Mutex
	events   []pdEvent
	statuses []int
	invalid  []string
}

func (s *pagerDutySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ev pdEvent
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&ev)
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue":
		s.invalid = append(s.invalid, r.Method+" "+r.URL.Path)
	case r.Header.Get("Content-Type") != "application/json":
		s.invalid = append(s.invalid, "content type "+r.Header.Get("Content-Type"))
	case err != nil:
		s.invalid = append(s.invalid, err.Error())
	case len(ev.RoutingKey) != 32 || len(ev.DedupKey) == 0 || len(ev.DedupKey) > 255:
		s.invalid = append(s.invalid, "routing_key or dedup_key")
	case ev.EventAction != "trigger" && ev.EventAction != "acknowledge" && ev.EventAction != "resolve":
		s.invalid = append(s.invalid, "event_action "+ev.EventAction)
	case ev.EventAction == "trigger" && (ev.Payload == nil || ev.Payload.Summary == "" || len(ev.Payload.Summary) > 1024 || ev.Payload.Source == "" ||
		!strings.Contains("critical error warning info", ev.Payload.Severity)):
		s.invalid = append(s.invalid, "payload")
	}
	w.Header().Set("Content-Type", "application/json")
	if len(s.statuses) > 0 {
		st := s.statuses[0]
		s.statuses = s.statuses[1:]
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "9")
		}
		w.WriteHeader(st)
		_, _ = w.Write([]byte(`{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}`))
		return
	}
	s.events = append(s.events, ev)
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
}

func TestPagerDutyTriggersAndResolves(t *testing.T) {
	g := NewWithT(t)
	s := &pagerDutySink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	key := "0123456789abcdef0123456789abcdef"
	pd := &PagerDuty{URL: srv.URL + "/ignored/path", RoutingKey: key, Scope: "uid-1"}

	g.Expect(pd.Send(context.Background(), failing)).To(Succeed())
	g.Expect(pd.Send(context.Background(), changed)).To(Succeed())
	g.Expect(pd.Send(context.Background(), recovered)).To(Succeed())
	g.Expect(s.invalid).To(BeEmpty())
	g.Expect(s.events).To(HaveLen(2), "a success that ends no failure is not sent")
	trigger, resolve := s.events[0], s.events[1]
	g.Expect(trigger.EventAction).To(Equal("trigger"))
	g.Expect(trigger.RoutingKey).To(Equal(key))
	g.Expect(trigger.DedupKey).To(Equal("plumb/uid-1/Kustomization/shop/api"))
	g.Expect(trigger.Payload.Summary).To(Equal("Kustomization/shop/api: HealthCheckFailed — Deployment/shop/api not ready"))
	g.Expect(trigger.Payload.Source).To(Equal("plumb apply-controller"))
	g.Expect(trigger.Payload.Severity).To(Equal("error"))
	g.Expect(trigger.Payload.Timestamp).To(Equal("1970-01-01T00:00:00Z"))
	g.Expect(trigger.Payload.Class).To(Equal("HealthCheckFailed"))
	g.Expect(trigger.Payload.CustomDetails).To(And(HaveKeyWithValue("message", failing.Message), HaveKeyWithValue("revision", sample.Revision),
		HaveKeyWithValue("cluster", "eu-1"), HaveKeyWithValue("summary", "prod")))
	g.Expect(resolve.EventAction).To(Equal("resolve"))
	g.Expect(resolve.DedupKey).To(Equal(trigger.DedupKey), "the recovery resolves the incident its failure opened")
	g.Expect(resolve.Payload).To(BeNil())

	// Another Provider (cluster) files the same object under another key.
	g.Expect((&PagerDuty{URL: srv.URL, RoutingKey: key, Scope: "uid-2"}).Send(context.Background(), failing)).To(Succeed())
	g.Expect(s.events[2].DedupKey).NotTo(Equal(trigger.DedupKey))
}

func TestPagerDutyFailedDelivery(t *testing.T) {
	g := NewWithT(t)
	s := &pagerDutySink{statuses: []int{http.StatusBadRequest, http.StatusTooManyRequests, http.StatusInternalServerError}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	key := "0123456789abcdef0123456789abcdef"
	pd := &PagerDuty{URL: srv.URL, RoutingKey: key, Scope: "uid-1"}

	var errs []error
	err := pd.Send(context.Background(), failing)
	errs = append(errs, err)
	var re *RetryableError
	g.Expect(err).To(MatchError(ContainSubstring("answered 400: Event object is invalid (Length of 'routing_key' is incorrect")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "a refused event is not retried")
	err = pd.Send(context.Background(), failing)
	errs = append(errs, err)
	g.Expect(errors.As(err, &re)).To(BeTrue(), "429 is retried: %v", err)
	g.Expect(re.RetryAfter).To(Equal(9 * time.Second))
	err = pd.Send(context.Background(), recovered)
	g.Expect(errors.As(err, &re)).To(BeTrue(), "5xx is retried: %v", err)
	g.Expect(s.events).To(BeEmpty())

	srv.Close()
	err = pd.Send(context.Background(), failing)
	errs = append(errs, err)
	g.Expect(errors.As(err, &re)).To(BeTrue(), "unreachable is retried: %v", err)
	err = (&PagerDuty{URL: "http://169.254.169.254", RoutingKey: key, Client: (&AddressPolicy{}).Client(nil, nil)}).Send(context.Background(), failing)
	g.Expect(err).To(MatchError(ContainSubstring("refused by the provider address policy")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "a refused address is not retried")
	for _, e := range append(errs, err) {
		g.Expect(e.Error()).NotTo(ContainSubstring(key), "the routing key stays out of errors")
	}
}

// opsgenieSink is a loopback Alert API: creates at POST /v2/alerts, closes at POST
// /v2/alerts/{alias}/close?identifierType=alias, GenieKey authentication, fields within the
// documented limits; it answers 202 as Opsgenie does, or the statuses given first.
type opsgenieSink struct {
	mu       sync.Mutex
	key      string
	requests []string
	bodies   []map[string]any
	statuses []int
	invalid  []string
}

func (s *opsgenieSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("Authorization") != "GenieKey "+s.key {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"Key format is not valid!","took":0.001,"requestId":"r"}`))
		return
	}
	if len(s.statuses) > 0 {
		st := s.statuses[0]
		s.statuses = s.statuses[1:]
		w.WriteHeader(st)
		return
	}
	var body map[string]any
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
		s.invalid = append(s.invalid, "not JSON")
	}
	limits := map[string]int{"message": 130, "alias": 512, "description": 15000, "entity": 512, "source": 100, "note": 25000}
	for k, max := range limits {
		if v, ok := body[k].(string); ok && len(v) > max {
			s.invalid = append(s.invalid, k+" too long")
		}
	}
	switch {
	case r.Method == http.MethodPost && r.URL.EscapedPath() == "/v2/alerts":
		if body["message"] == "" || body["message"] == nil {
			s.invalid = append(s.invalid, "no message")
		}
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/close") && r.URL.Query().Get("identifierType") == "alias":
	default:
		s.invalid = append(s.invalid, r.Method+" "+r.URL.String())
	}
	s.requests = append(s.requests, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery)
	s.bodies = append(s.bodies, body)
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"result":"Request will be processed","took":0.302,"requestId":"43a29c5c-3dbf-4fa4-9c26-f4f71023e120"}`))
}

func TestOpsgenieCreatesAndCloses(t *testing.T) {
	g := NewWithT(t)
	s := &opsgenieSink{key: "genie-key"}
	srv := httptest.NewServer(s)
	defer srv.Close()
	og := &Opsgenie{URL: srv.URL + "/v2/alerts", APIKey: "genie-key", Scope: "uid-1"}

	g.Expect(og.Send(context.Background(), failing)).To(Succeed())
	g.Expect(og.Send(context.Background(), changed)).To(Succeed())
	g.Expect(og.Send(context.Background(), recovered)).To(Succeed())
	g.Expect(s.invalid).To(BeEmpty())
	g.Expect(s.requests).To(Equal([]string{
		"POST /v2/alerts?",
		"POST /v2/alerts/plumb%2Fuid-1%2FKustomization%2Fshop%2Fapi/close?identifierType=alias",
	}), "a success that ends no failure is not sent; the recovery closes the alert by its alias")
	create := s.bodies[0]
	g.Expect(create).To(And(HaveKeyWithValue("message", "Kustomization/shop/api: HealthCheckFailed"),
		HaveKeyWithValue("alias", "plumb/uid-1/Kustomization/shop/api"), HaveKeyWithValue("entity", "Kustomization/shop/api"),
		HaveKeyWithValue("source", "plumb apply-controller")))
	g.Expect(create["description"]).To(ContainSubstring("revision: " + sample.Revision))
	g.Expect(create["details"]).To(And(HaveKeyWithValue("cluster", "eu-1"), HaveKeyWithValue("reason", "HealthCheckFailed")))
	g.Expect(s.bodies[1]).To(HaveKeyWithValue("source", "plumb"))

	s.statuses = []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}
	var re *RetryableError
	g.Expect(errors.As(og.Send(context.Background(), failing), &re)).To(BeTrue(), "429 is retried")
	g.Expect(errors.As(og.Send(context.Background(), recovered), &re)).To(BeTrue(), "5xx is retried")
	err := (&Opsgenie{URL: srv.URL + "/v2/alerts", APIKey: "wrong-key"}).Send(context.Background(), failing)
	g.Expect(err).To(MatchError(ContainSubstring("answered 401 Unauthorized")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "401 is not retried")
	g.Expect(err.Error()).NotTo(ContainSubstring("wrong-key"))
}

// Against the real Alertmanager: a failure fires an alert with the object's labels, the
// recovery resolves it (it leaves the API's list of alerts), and a wrong password is refused.
func TestAlertmanagerFiresAndResolves(t *testing.T) {
	g := NewWithT(t)
	am := notifytest.StartAlertmanager(t, "plumb", "s3cret")
	allow := &AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	sender := &Alertmanager{URL: am.URL + "/api/v2/alerts", Username: "plumb", Password: "s3cret", Client: allow.Client(nil, nil)}
	n := failing
	n.Time = time.Now().UTC().Add(-time.Minute)
	n.Metadata = map[string]string{"cluster": "eu-1", "team.name": "shop", "severity": "not-this"}

	g.Expect(sender.Send(context.Background(), n)).To(Succeed())
	g.Expect(sender.Send(context.Background(), changed)).To(Succeed(), "nothing to send")
	alerts, err := am.Alerts()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(alerts).To(HaveLen(1))
	a := alerts[0]
	g.Expect(a.Labels).To(Equal(map[string]string{
		"alertname": "PlumbKustomizationHealthCheckFailed", "severity": "error", "reason": "HealthCheckFailed",
		"kind": "Kustomization", "namespace": "shop", "name": "api", "reportingcontroller": "apply-controller",
		"cluster": "eu-1", "team_name": "shop",
	}))
	g.Expect(a.Annotations).To(Equal(map[string]string{"message": n.Message, "revision": sample.Revision, "summary": "prod"}))
	g.Expect(a.Status.State).To(Equal("active"))
	g.Expect(a.StartsAt.Unix()).To(Equal(n.Time.Unix()))

	r := recovered
	r.Time, r.Metadata = time.Now().UTC(), n.Metadata
	g.Expect(sender.Send(context.Background(), r)).To(Succeed())
	g.Eventually(func(g Gomega) {
		alerts, err := am.Alerts()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(alerts).To(BeEmpty(), "the recovery resolves the alert")
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())

	wrong := &Alertmanager{URL: sender.URL, Username: "plumb", Password: "wrong", Client: sender.Client}
	err = wrong.Send(context.Background(), n)
	g.Expect(err).To(MatchError(ContainSubstring("answered 401 Unauthorized")))
	var re *RetryableError
	g.Expect(errors.As(err, &re)).To(BeFalse())
	g.Expect(err.Error()).NotTo(ContainSubstring("wrong"))
}

// The request exactly: a JSON array of postable alerts, the bearer token; 429 and 5xx retried.
func TestAlertmanagerRequest(t *testing.T) {
	g := NewWithT(t)
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	am := &Alertmanager{URL: srv.URL + "/api/v2/alerts", Token: "t0ken"}
	r := recovered
	r.Recovers = []string{"BuildFailed", "HealthCheckFailed"}
	g.Expect(am.Send(context.Background(), r)).To(Succeed())
	g.Expect(s.headers[0].Get("Authorization")).To(Equal("Bearer t0ken"))
	var alerts []map[string]any
	dec := json.NewDecoder(bytes.NewReader(s.bodies[0]))
	g.Expect(dec.Decode(&alerts)).To(Succeed())
	g.Expect(alerts).To(HaveLen(2), "one resolved alert per failure reason sent")
	for i, reason := range r.Recovers {
		g.Expect(alerts[i]["labels"]).To(HaveKeyWithValue("reason", reason))
		g.Expect(alerts[i]["labels"]).To(HaveKeyWithValue("severity", "error"), "the labels of the alert the failure fired")
		g.Expect(alerts[i]).To(HaveKeyWithValue("endsAt", "1970-01-01T00:00:00Z"))
	}
	s.statuses = []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusBadRequest}
	var re *RetryableError
	g.Expect(errors.As(am.Send(context.Background(), failing), &re)).To(BeTrue())
	g.Expect(re.RetryAfter).To(Equal(7 * time.Second))
	g.Expect(errors.As(am.Send(context.Background(), failing), &re)).To(BeTrue())
	err := am.Send(context.Background(), failing)
	g.Expect(err).To(MatchError(ContainSubstring("answered 400")))
	g.Expect(errors.As(err, &re)).To(BeFalse())
}
