package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// request is one request a service stand-in got.
type request struct {
	Method, Path, EscapedPath, RawQuery string
	Header                              http.Header
	Body                                []byte
	User, Password                      string
}

// reply is one answer of a service stand-in.
type reply struct {
	status int
	header map[string]string
	body   string
}

// service stands in for a chat or observability service on loopback: it records every request
// and answers with the replies given, in order, then with its success answer (200 and okBody).
type service struct {
	mu      sync.Mutex
	got     []request
	replies []reply
	okBody  string
}

func newService(t *testing.T, okBody string, replies ...reply) (*service, string) {
	s := &service{okBody: okBody, replies: replies}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	user, pass, _ := r.BasicAuth()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, request{Method: r.Method, Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, User: user, Password: pass})
	rp := reply{status: http.StatusOK, body: s.okBody}
	if len(s.replies) > 0 {
		rp, s.replies = s.replies[0], s.replies[1:]
	}
	for k, v := range rp.header {
		w.Header().Set(k, v)
	}
	if strings.HasPrefix(rp.body, "{") {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rp.status)
	_, _ = io.WriteString(w, rp.body)
}

// requests are the requests got so far.
func (s *service) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.got...)
}

// last is the last request got.
func (s *service) last(t *testing.T) request {
	t.Helper()
	got := s.requests()
	if len(got) == 0 {
		t.Fatal("the service got no request")
	}
	return got[len(got)-1]
}

// jsonBody decodes a request's JSON body.
func (r request) jsonBody(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.Body)
	}
	return m
}

// failedSample is sample about a failure, with a message that needs escaping in HTML.
var failedSample = func() Notification {
	n := sample
	n.Severity, n.Reason, n.Message = "error", "BuildFailed", "kustomize build ./apps: <none> & \"x\" not found"
	return n
}()

const secretToken = "t0ken-S3CRET-abcdef"

// Every new sender classifies a service's refusals as the existing ones do: a 401 (or any
// 4xx) is not retried and says what the service said, with the token scrubbed should the
// service echo it; 429 is retried after the wait the service asked for, in the header or body
// field it documents; 5xx is retried; a service that cannot be reached is retried.
func TestChatSendersClassifyFailures(t *testing.T) {
	refusal := reply{status: http.StatusUnauthorized, body: `{"message":"bad credentials ` + secretToken + `"}`}
	server503 := reply{status: http.StatusServiceUnavailable, body: "busy"}
	retryAfter7 := reply{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "7"}}
	cases := []struct {
		name   string
		ok     string
		limit  reply
		wait   time.Duration
		sender func(url string) Sender
	}{
		{"googlechat", `{}`, retryAfter7, 7 * time.Second,
			func(u string) Sender {
				return &GoogleChat{URL: u + "/v1/spaces/AAA/messages?key=k&token=" + secretToken}
			}},
		{"telegram", `{"ok":true,"result":{}}`,
			reply{status: 429, body: `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}`}, 5 * time.Second,
			func(u string) Sender { return &Telegram{APIURL: u, Token: secretToken, ChatID: "-100123"} }},
		{"matrix", `{"event_id":"$1"}`,
			reply{status: 429, body: `{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":2500}`}, 2500 * time.Millisecond,
			func(u string) Sender { return &Matrix{Homeserver: u, Token: secretToken, RoomID: "!room:example.org"} }},
		{"rocket", `{"success":true}`, retryAfter7, 7 * time.Second,
			func(u string) Sender { return &Rocket{URL: u + "/hooks/abc/" + secretToken} }},
		{"mattermost", `ok`, retryAfter7, 7 * time.Second,
			func(u string) Sender { return &Mattermost{URL: u + "/hooks/" + secretToken} }},
		{"webex", `{"id":"1"}`, retryAfter7, 7 * time.Second,
			func(u string) Sender { return &Webex{URL: u + "/v1/messages", Token: secretToken, RoomID: "Y2lzY29"} }},
		{"lark", `{"code":0,"msg":"success"}`, retryAfter7, 7 * time.Second,
			func(u string) Sender { return &Lark{URL: u + "/open-apis/bot/v2/hook/" + secretToken} }},
		{"zulip", `{"result":"success","id":1}`, retryAfter7, 7 * time.Second,
			func(u string) Sender {
				return &Zulip{Server: u, Email: "bot@example.org", APIKey: secretToken, Channel: "ops", Topic: "deploys"}
			}},
		{"grafana", `{"id":1,"message":"Annotation added"}`, retryAfter7, 7 * time.Second,
			func(u string) Sender { return &Grafana{URL: u + "/api/annotations", Token: secretToken} }},
		{"datadog", `{"status":"ok"}`,
			reply{status: 429, header: map[string]string{"X-RateLimit-Reset": "9", "X-RateLimit-Limit": "1000"}, body: `{"errors":["Too many requests"]}`}, 9 * time.Second,
			func(u string) Sender { return &Datadog{Site: u, APIKey: secretToken} }},
		{"sentry", `{"id":"1"}`, retryAfter7, 7 * time.Second,
			func(u string) Sender {
				s, err := NewSentry(strings.Replace(u, "http://", "http://"+secretToken+"@", 1)+"/42", "", nil)
				if err != nil {
					panic(err)
				}
				return s
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			svc, url := newService(t, tc.ok, refusal, tc.limit, server503)
			s := tc.sender(url)
			ctx := context.Background()
			var re *RetryableError

			err := s.Send(ctx, sample)
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.As(err, &re)).To(BeFalse(), "401 is not retried: %v", err)
			g.Expect(err.Error()).To(ContainSubstring("401 Unauthorized: bad credentials <redacted>"))
			g.Expect(err.Error()).NotTo(ContainSubstring(secretToken))

			err = s.Send(ctx, sample)
			g.Expect(errors.As(err, &re)).To(BeTrue(), "429 is retried: %v", err)
			g.Expect(re.RetryAfter).To(Equal(tc.wait), "the service's wait is honoured")

			err = s.Send(ctx, sample)
			g.Expect(errors.As(err, &re)).To(BeTrue(), "5xx is retried: %v", err)
			g.Expect(err.Error()).To(ContainSubstring("503"))

			g.Expect(s.Send(ctx, sample)).To(Succeed())
			g.Expect(svc.requests()).To(HaveLen(4))

			down := tc.sender("http://127.0.0.1:9")
			err = down.Send(ctx, sample)
			g.Expect(errors.As(err, &re)).To(BeTrue(), "unreachable is retried: %v", err)
			g.Expect(err.Error()).NotTo(ContainSubstring(secretToken))
		})
	}
}
