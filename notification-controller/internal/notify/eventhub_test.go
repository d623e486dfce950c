package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// eventHubSink is a loopback Event Hubs namespace over HTTPS, checking each send as the REST
// API documents it: POST /<hub>/messages?timeout=60&api-version=2014-01, the atom content
// type, and an Authorization header that is either a bearer token it knows or a Shared Access
// Signature for https://<host>/<hub>, signed with the policy's key and not expired. It answers
// 201, 401 with Event Hubs' error body, or the statuses given first.
type eventHubSink struct {
	mu       sync.Mutex
	hub      string
	keyName  string
	key      string
	bearer   string
	bodies   [][]byte
	statuses []int
	invalid  []string
}

func (s *eventHubSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/"+s.hub+"/messages" || r.URL.RawQuery != "timeout=60&api-version=2014-01" ||
		r.Header.Get("Content-Type") != "application/atom+xml;type=entry;charset=utf-8" {
		s.invalid = append(s.invalid, r.Method+" "+r.URL.String()+" "+r.Header.Get("Content-Type"))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if !s.authorized(r.Host, r.Header.Get("Authorization")) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`<Error><Code>401</Code><Detail>InvalidSignature: The token has an invalid signature.</Detail></Error>`))
		return
	}
	if len(s.statuses) > 0 {
		st := s.statuses[0]
		s.statuses = s.statuses[1:]
		w.WriteHeader(st)
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.bodies = append(s.bodies, body)
	w.WriteHeader(http.StatusCreated)
}

func (s *eventHubSink) authorized(host, auth string) bool {
	if s.bearer != "" && auth == "Bearer "+s.bearer {
		return true
	}
	sas, ok := strings.CutPrefix(auth, "SharedAccessSignature ")
	if !ok {
		return false
	}
	q, err := url.ParseQuery(sas)
	if err != nil || q.Get("skn") != s.keyName || q.Get("sr") != "https://"+host+"/"+s.hub {
		return false
	}
	se, err := strconv.ParseInt(q.Get("se"), 10, 64)
	if err != nil || time.Unix(se, 0).Before(time.Now()) {
		return false
	}
	m := hmac.New(sha256.New, []byte(s.key))
	m.Write([]byte(url.QueryEscape(q.Get("sr")) + "\n" + q.Get("se")))
	return hmac.Equal([]byte(base64.StdEncoding.EncodeToString(m.Sum(nil))), []byte(q.Get("sig")))
}

func TestAzureEventHubSends(t *testing.T) {
	g := NewWithT(t)
	s := &eventHubSink{hub: "deploys", keyName: "send", key: "c2VjcmV0LWtleQ==", bearer: "entra-token"}
	srv := httptest.NewTLSServer(s)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	conn := "Endpoint=sb://" + host + "/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0LWtleQ==;EntityPath=deploys"

	eh := &AzureEventHub{ConnectionString: conn, Client: srv.Client()}
	g.Expect(eh.Send(context.Background(), failing)).To(Succeed())
	g.Expect((&AzureEventHub{Namespace: host, Hub: "deploys", Token: "entra-token", Client: srv.Client()}).Send(context.Background(), recovered)).To(Succeed())
	g.Expect(s.invalid).To(BeEmpty())
	g.Expect(s.bodies).To(HaveLen(2))
	var got Notification
	g.Expect(json.Unmarshal(s.bodies[0], &got)).To(Succeed())
	want := failing
	want.Recovers = nil
	g.Expect(got).To(Equal(want), "the JSON of generic")

	// A signature made in advance is sent as it is.
	sas := SharedAccessSignature("https://"+host+"/deploys", "send", "c2VjcmV0LWtleQ==", time.Now().Add(time.Minute))
	g.Expect((&AzureEventHub{ConnectionString: "Endpoint=sb://" + host + "/;SharedAccessSignature=" + sas + ";EntityPath=deploys", Client: srv.Client()}).
		Send(context.Background(), failing)).To(Succeed())
}

func TestAzureEventHubFailedDelivery(t *testing.T) {
	g := NewWithT(t)
	s := &eventHubSink{hub: "deploys", keyName: "send", key: "right-key", statuses: nil}
	srv := httptest.NewTLSServer(s)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")

	var re *RetryableError
	err := (&AzureEventHub{ConnectionString: "Endpoint=sb://" + host + "/;SharedAccessKeyName=send;SharedAccessKey=wrong-key;EntityPath=deploys", Client: srv.Client()}).Send(context.Background(), failing)
	g.Expect(err).To(MatchError(ContainSubstring("answered 401 Unauthorized")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "a refused signature is not retried")
	g.Expect(err.Error()).NotTo(ContainSubstring("wrong-key"))

	good := &AzureEventHub{ConnectionString: "Endpoint=sb://" + host + "/;SharedAccessKeyName=send;SharedAccessKey=right-key;EntityPath=deploys", Client: srv.Client()}
	s.statuses = []int{http.StatusServiceUnavailable, http.StatusInternalServerError}
	g.Expect(errors.As(good.Send(context.Background(), failing), &re)).To(BeTrue(), "503 (server busy) is retried")
	g.Expect(errors.As(good.Send(context.Background(), failing), &re)).To(BeTrue(), "500 is retried")

	for conn, want := range map[string]string{
		"Endpoint=sb://" + host + "/;SharedAccessKeyName=send;SharedAccessKey=right-key": "no EntityPath",
		"SharedAccessKeyName=send;SharedAccessKey=right-key;EntityPath=deploys":          "no Endpoint",
		"Endpoint=sb://" + host + "/;EntityPath=deploys":                                 "neither SharedAccessKeyName",
		"garbage": "not key=value pairs",
	} {
		err := (&AzureEventHub{ConnectionString: conn, Client: srv.Client()}).Send(context.Background(), failing)
		g.Expect(err).To(MatchError(ContainSubstring(want)))
		g.Expect(err.Error()).NotTo(ContainSubstring("right-key"))
	}
	g.Expect(s.bodies).To(BeEmpty())
}
