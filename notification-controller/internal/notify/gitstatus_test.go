package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/notification-controller/internal/githosttest"
)

// apiCall is a request a host received.
type apiCall struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// apiHost records calls and answers them with the queued answers (a status, headers and a
// body), then with ok.
type apiHost struct {
	mu      sync.Mutex
	calls   []apiCall
	answers []cannedAnswer
	ok      int
}

type cannedAnswer struct {
	status int
	header map[string]string
	body   string
}

func (h *apiHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, apiCall{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), b})
	a := cannedAnswer{status: h.ok, body: "{}"}
	if len(h.answers) > 0 {
		a, h.answers = h.answers[0], h.answers[1:]
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func newAPIHost(t *testing.T, ok int) (*apiHost, string) {
	h := &apiHost{ok: ok}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

// strict decodes a JSON body into want's type, refusing any field the host does not document.
func strict(g Gomega, body []byte, into any) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	g.Expect(dec.Decode(into)).To(Succeed(), "body %s", body)
}

func TestGiteaCommitStatus(t *testing.T) {
	g := NewWithT(t)
	h := githosttest.New(t, githosttest.Gitea)
	failed := sample
	failed.Severity = "error"
	s := &Gitea{Repository: h.Repository() + ".git", Token: h.Token}
	g.Expect(s.Send(context.Background(), failed)).To(Succeed())
	s.Text.Description = func(_ context.Context, n Notification) (string, error) { return strings.Repeat("é", 200), nil }
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	g.Expect(h.Statuses()).To(Equal([]githosttest.Status{
		{SHA: sampleSHA, State: "failure", Context: "Kustomization/shop/api", Description: "Succeeded: Deployment/shop/api configured"},
		{SHA: sampleSHA, State: "success", Context: "Kustomization/shop/api", Description: strings.Repeat("é", 129) + "…"},
	}))
	r := h.Requests()[0]
	g.Expect(r.Method + " " + r.Path).To(Equal("POST /api/v1/repos/acme/shop/statuses/" + sampleSHA))
	g.Expect(r.Header.Get("Authorization")).To(Equal("token " + h.Token))
	var body struct {
		State, Context, Description string
		TargetURL                   string `json:"target_url"`
	}
	strict(g, r.Body, &body)
	g.Expect(len(h.Requests())).To(Equal(2), "no version probe: one request a status")

	// A Gitea served under a path.
	sub := &Gitea{Repository: h.URL + "/git/acme/shop", Token: h.Token}
	err := sub.Send(context.Background(), sample)
	g.Expect(err).To(MatchError(ContainSubstring("404 Not Found")))
	g.Expect(h.Requests()[2].Path).To(Equal("/git/api/v1/repos/acme/shop/statuses/" + sampleSHA))
}

func TestBitbucketBuildStatus(t *testing.T) {
	g := NewWithT(t)
	h, api := newAPIHost(t, http.StatusCreated)
	failed := sample
	failed.Severity = "error"
	s := &Bitbucket{Repository: "https://bitbucket.org/team/shop.git", APIURL: api, Token: "jane:app-pa55"}
	g.Expect(s.Send(context.Background(), failed)).To(Succeed())
	c := h.calls[0]
	g.Expect(c.method + " " + c.path).To(Equal("POST /2.0/repositories/team/shop/commit/" + sampleSHA + "/statuses/build"))
	g.Expect(c.header.Get("Authorization")).To(Equal("Basic " + base64.StdEncoding.EncodeToString([]byte("jane:app-pa55"))))
	var body struct{ Key, State, Name, Description, URL string }
	strict(g, c.body, &body)
	g.Expect(body).To(Equal(struct{ Key, State, Name, Description, URL string }{
		Key: statusKey("Kustomization/shop/api"), State: "FAILED", Name: "Kustomization/shop/api",
		Description: "Succeeded: Deployment/shop/api configured", URL: "https://bitbucket.org/team/shop"}))
	g.Expect(body.Key).To(HaveLen(40))

	// An access token (no colon) goes as a bearer token.
	s.Token = "ATCTT3xFfGN0"
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	g.Expect(h.calls[1].header.Get("Authorization")).To(Equal("Bearer ATCTT3xFfGN0"))
	strict(g, h.calls[1].body, &body)
	g.Expect(body.State).To(Equal("SUCCESSFUL"))
}

func TestBitbucketServerBuildStatus(t *testing.T) {
	g := NewWithT(t)
	h, srv := newAPIHost(t, http.StatusNoContent)
	s := &BitbucketServer{Repository: srv + "/bitbucket/scm/PROJ/shop.git", Username: "jane", Password: "pa55"}
	s.Text.Name = func(_ context.Context, n Notification) (string, error) { return "deploy/" + n.Name, nil }
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	c := h.calls[0]
	g.Expect(c.method + " " + c.path).To(Equal("POST /bitbucket/rest/api/latest/projects/PROJ/repos/shop/commits/" + sampleSHA + "/builds"))
	g.Expect(c.header.Get("Authorization")).To(Equal("Basic " + base64.StdEncoding.EncodeToString([]byte("jane:pa55"))))
	g.Expect(c.header.Get("X-Atlassian-Token")).To(Equal("no-check"))
	var body struct{ Key, State, Name, Description, URL string }
	strict(g, c.body, &body)
	g.Expect(body).To(Equal(struct{ Key, State, Name, Description, URL string }{
		Key: statusKey("deploy/api"), State: "SUCCESSFUL", Name: "deploy/api",
		Description: "Succeeded: Deployment/shop/api configured", URL: srv + "/bitbucket/projects/PROJ/repos/shop"}))

	s.Token, s.Repository = "BBDC-token", srv+"/projects/PROJ/repos/shop/browse"
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	g.Expect(h.calls[1].path).To(Equal("/rest/api/latest/projects/PROJ/repos/shop/commits/" + sampleSHA + "/builds"))
	g.Expect(h.calls[1].header.Get("Authorization")).To(Equal("Bearer BBDC-token"), "the token wins")
}

func TestAzureDevOpsCommitStatus(t *testing.T) {
	g := NewWithT(t)
	h, srv := newAPIHost(t, http.StatusCreated)
	failed := sample
	failed.Severity = "error"
	s := &AzureDevOps{Repository: srv + "/org/My%20Project/_git/shop", Token: "ado-pat"}
	g.Expect(s.Send(context.Background(), failed)).To(Succeed())
	c := h.calls[0]
	g.Expect(c.method + " " + c.path + "?" + c.query).To(Equal("POST /org/My%20Project/_apis/git/repositories/shop/commits/" + sampleSHA + "/statuses?api-version=6.0"))
	g.Expect(c.header.Get("Authorization")).To(Equal("Basic " + base64.StdEncoding.EncodeToString([]byte(":ado-pat"))))
	var body struct {
		State, Description string
		TargetURL          string `json:"targetUrl"`
		Context            struct{ Name, Genre string }
	}
	strict(g, c.body, &body)
	g.Expect(body.State).To(Equal("failed"))
	g.Expect(body.Context.Name).To(Equal("Kustomization/shop/api"))
	g.Expect(body.Context.Genre).To(Equal("plumb:prod"), "the Alert's summary, as Flux's genre has it")
	g.Expect(body.TargetURL).To(Equal(srv + "/org/My%20Project/_git/shop"))
}

func TestGitHubDispatch(t *testing.T) {
	g := NewWithT(t)
	h := githosttest.New(t, githosttest.GitHub)
	n := sample
	n.APIVersion = "apply.plumb.dev/v1beta1"
	s := &GitHubDispatch{Repository: h.Repository(), APIURL: h.API, Token: h.Token}
	g.Expect(s.Send(context.Background(), n)).To(Succeed())
	r := h.Requests()[0]
	g.Expect(r.Method + " " + r.Path).To(Equal("POST /repos/acme/shop/dispatches"))
	g.Expect(r.Header.Get("Authorization")).To(Equal("Bearer " + h.Token))
	var body struct {
		EventType     string         `json:"event_type"`
		ClientPayload map[string]any `json:"client_payload"`
	}
	strict(g, r.Body, &body)
	g.Expect(body.EventType).To(Equal("Kustomization/api.shop"))
	g.Expect(len(body.ClientPayload)).To(BeNumerically("<=", 10), "GitHub takes at most 10 top-level properties")
	g.Expect(body.ClientPayload).To(Equal(map[string]any{
		"involvedObject": map[string]any{"apiVersion": "apply.plumb.dev/v1beta1", "kind": "Kustomization", "namespace": "shop", "name": "api"},
		"severity":       "info", "reason": "Succeeded", "message": "Deployment/shop/api configured",
		"metadata":            map[string]any{"cluster": "eu-1", "revision": sample.Revision},
		"reportingController": "apply-controller", "timestamp": "1970-01-01T00:00:00Z",
	}))
}

// senders are every Git host type made for one loopback API, for the failure tests.
func gitSenders(api string) map[string]Sender {
	return map[string]Sender{
		"github":                    &CommitStatus{Repository: "https://github.com/acme/shop", APIURL: api, Token: "tok3n"},
		"gitlab":                    &CommitStatus{GitLab: true, Repository: "https://gitlab.com/acme/shop", APIURL: api, Token: "tok3n"},
		"gitea":                     &Gitea{Repository: api + "/acme/shop", Token: "tok3n"},
		"bitbucket":                 &Bitbucket{Repository: "https://bitbucket.org/acme/shop", APIURL: api, Token: "jane:tok3n"},
		"bitbucketserver":           &BitbucketServer{Repository: api + "/scm/ACME/shop.git", Token: "tok3n"},
		"azuredevops":               &AzureDevOps{Repository: api + "/acme/shop/_git/shop", Token: "tok3n"},
		"githubdispatch":            &GitHubDispatch{Repository: "https://github.com/acme/shop", APIURL: api, Token: "tok3n"},
		"githubpullrequestcomment":  &GitHubPullRequestComment{Repository: "https://github.com/acme/shop", APIURL: api, Token: "tok3n"},
		"gitlabmergerequestcomment": &GitLabMergeRequestComment{Repository: "https://gitlab.com/acme/shop", APIURL: api, Token: "tok3n"},
		"giteapullrequestcomment":   &GiteaPullRequestComment{Repository: api + "/acme/shop", Token: "tok3n"},
	}
}

// Failed deliveries are classified as the dispatcher retries them: 401 is not retried and
// says what the host said (without the token it echoed), 429 is retried after Retry-After,
// 5xx is retried; GitHub's rate limit (403 with x-ratelimit-remaining: 0) is retried at its
// reset. An unreachable host is retried, and its error has no path.
func TestGitSenders_FailedDeliveries(t *testing.T) {
	for name := range gitSenders("") {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			h, api := newAPIHost(t, http.StatusOK)
			s := gitSenders(api)[name]
			reset := fmt.Sprint(time.Now().Add(90 * time.Second).Unix())
			h.answers = []cannedAnswer{
				{status: http.StatusUnauthorized, body: `{"message": "Bad credentials: tok3n"}`},
				{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "7"}},
				{status: http.StatusBadGateway},
				{status: http.StatusForbidden, header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}, body: `{"message": "API rate limit exceeded"}`},
			}
			var re *RetryableError
			err := s.Send(context.Background(), sample)
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.As(err, &re)).To(BeFalse(), "401 is not retried")
			g.Expect(err.Error()).To(ContainSubstring("401 Unauthorized"))
			g.Expect(err.Error()).To(ContainSubstring("Bad credentials"), "the host's message")
			g.Expect(err.Error()).NotTo(ContainSubstring("tok3n"))

			err = s.Send(context.Background(), sample)
			g.Expect(errors.As(err, &re)).To(BeTrue(), "429 is retried: %v", err)
			g.Expect(re.RetryAfter).To(Equal(7 * time.Second))
			err = s.Send(context.Background(), sample)
			g.Expect(errors.As(err, &re)).To(BeTrue(), "5xx is retried: %v", err)

			err = s.Send(context.Background(), sample)
			g.Expect(errors.As(err, &re)).To(BeTrue(), "403 of a rate limit is retried: %v", err)
			g.Expect(re.RetryAfter).To(BeNumerically("~", 90*time.Second, 2*time.Second))
			h.answers = []cannedAnswer{{status: http.StatusForbidden, body: `{"error": {"message": "Resource not accessible"}}`}}
			err = s.Send(context.Background(), sample)
			g.Expect(errors.As(err, &re)).To(BeFalse(), "a refusal is not retried: %v", err)

			bad := gitSenders("http://127.0.0.1:1")[name]
			err = bad.Send(context.Background(), sample)
			g.Expect(errors.As(err, &re)).To(BeTrue(), "unreachable is retried: %v", err)
			g.Expect(err.Error()).NotTo(ContainSubstring("/acme"))
		})
	}
}
