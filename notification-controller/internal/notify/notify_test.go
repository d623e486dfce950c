package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
)

var sample = Notification{
	Kind: "Kustomization", Namespace: "shop", Name: "api", Severity: "info", Reason: "Succeeded",
	Message: "Deployment/shop/api configured", Revision: "main@sha1:1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
	Controller: "apply-controller", Summary: "prod", Metadata: map[string]string{"cluster": "eu-1"}, Time: time.Unix(0, 0).UTC(),
}

// sink records the requests it gets and answers with the statuses given, then 200.
type sink struct {
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	statuses []int
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = append(s.bodies, b)
	s.headers = append(s.headers, r.Header.Clone())
	if len(s.statuses) > 0 {
		st := s.statuses[0]
		s.statuses = s.statuses[1:]
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(st)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/chat.postMessage") {
		_, _ = w.Write([]byte(`{"ok":true,"channel":"C1","ts":"1"}`))
	}
}

func TestWebhookSignsAndClassifies(t *testing.T) {
	g := NewWithT(t)
	s := &sink{statuses: []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadRequest}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	w := &Webhook{URL: srv.URL + "/hook?token=abc", Key: []byte("k3y"), Headers: map[string]string{"X-Team": "shop"}}

	err := w.Send(context.Background(), sample)
	var re *RetryableError
	g.Expect(errors.As(err, &re)).To(BeTrue(), "5xx is retried: %v", err)
	err = w.Send(context.Background(), sample)
	g.Expect(errors.As(err, &re)).To(BeTrue())
	g.Expect(re.RetryAfter).To(Equal(7*time.Second), "Retry-After honoured")
	err = w.Send(context.Background(), sample)
	g.Expect(err).To(HaveOccurred())
	g.Expect(errors.As(err, &re)).To(BeFalse(), "4xx is not retried")
	g.Expect(err.Error()).NotTo(ContainSubstring("token=abc"))
	g.Expect(w.Send(context.Background(), sample)).To(Succeed())

	body := s.bodies[3]
	var got Notification
	g.Expect(json.Unmarshal(body, &got)).To(Succeed())
	g.Expect(got).To(Equal(sample))
	m := hmac.New(sha256.New, []byte("k3y"))
	m.Write(body)
	g.Expect(s.headers[3].Get("X-Signature")).To(Equal("sha256=" + hex.EncodeToString(m.Sum(nil))))
	g.Expect(s.headers[3].Get("X-Team")).To(Equal("shop"))

	srv.Close()
	err = (&Webhook{URL: srv.URL + "/secret-path/abc"}).Send(context.Background(), sample)
	g.Expect(errors.As(err, &re)).To(BeTrue(), "unreachable is retried")
	g.Expect(err.Error()).NotTo(ContainSubstring("secret-path"))
}

// A redirect to another server is refused: the webhook's headers (credentials) stay home.
func TestRedirectsStayOnTheHost(t *testing.T) {
	g := NewWithT(t)
	elsewhere := &sink{}
	other := httptest.NewServer(elsewhere)
	defer other.Close()
	redirect := httptest.NewServer(http.RedirectHandler(other.URL+"/stolen", http.StatusTemporaryRedirect))
	defer redirect.Close()
	w := &Webhook{URL: redirect.URL + "/hook", Headers: map[string]string{"Authorization": "Bearer s3cret", "X-Api-Key": "s3cret"}}
	err := w.Send(context.Background(), sample)
	g.Expect(err).To(MatchError(ContainSubstring("refused a redirect to another server")))
	g.Expect(elsewhere.bodies).To(BeEmpty())

	cs := &CommitStatus{Repository: redirect.URL + "/org/repo", Token: "s3cret", APIURL: redirect.URL}
	n := sample
	g.Expect(cs.Send(context.Background(), n)).To(MatchError(ContainSubstring("refused a redirect to another server")))
	g.Expect(elsewhere.headers).To(BeEmpty(), "the token went to another server")
}

func TestSlackWebhookAndBot(t *testing.T) {
	g := NewWithT(t)
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()

	g.Expect((&Slack{WebhookURL: srv.URL + "/services/T/B/X", Username: "plumb"}).Send(context.Background(), sample)).To(Succeed())
	var msg map[string]any
	g.Expect(json.Unmarshal(s.bodies[0], &msg)).To(Succeed())
	g.Expect(msg["text"]).To(Equal("Kustomization/shop/api: Succeeded"))
	g.Expect(msg["username"]).To(Equal("plumb"))
	blocks, _ := json.Marshal(msg["blocks"])
	g.Expect(string(blocks)).To(And(ContainSubstring("Deployment/shop/api configured"), ContainSubstring("main@sha1:1a2b3c4d5e6f`"), ContainSubstring("eu-1")))

	g.Expect((&Slack{Token: "xoxb-test", Channel: "#deploys", APIURL: srv.URL + "/api/"}).Send(context.Background(), sample)).To(Succeed())
	sent := s.headers[1].Get("Authorization") + " " + string(s.bodies[1])
	g.Expect(sent).To(ContainSubstring("xoxb-test"), "the bot token goes along")
	g.Expect(sent).To(ContainSubstring("deploys"))
}

func TestShortRevision(t *testing.T) {
	cases := map[string]string{
		"main@sha1:1a2b3c4d5e6f7a8b9c0d": "main@sha1:1a2b3c4d5e6f",
		"v1.0.0@sha256:abcdef":           "v1.0.0@sha256:abcdef",
		"1.2.3":                          "1.2.3",
	}
	for in, want := range cases {
		if got := ShortRevision(in); got != want {
			t.Errorf("ShortRevision(%q) = %q, want %q", in, got, want)
		}
	}
}

// truncate cuts at a character's start: a cut through "é" or "✅" would send invalid UTF-8.
func TestTruncateKeepsCharactersWhole(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…"},
		{"aé", 2, "a…"},
		{"✅✅", 4, "✅…"},
		{"✅✅", 5, "✅…"},
		{"✅✅", 2, "…"},
	}
	for _, c := range cases {
		got := truncate(c.in, c.n)
		if got != c.want || !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestTeamsAndDiscordPayloads(t *testing.T) {
	g := NewWithT(t)
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	failed := sample
	failed.Severity = "error"

	g.Expect((&Teams{URL: srv.URL + "/workflows/x"}).Send(context.Background(), failed)).To(Succeed())
	var teams struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type string           `json:"type"`
				Body []map[string]any `json:"body"`
			} `json:"content"`
		} `json:"attachments"`
	}
	g.Expect(json.Unmarshal(s.bodies[0], &teams)).To(Succeed())
	g.Expect(teams.Type).To(Equal("message"))
	g.Expect(teams.Attachments[0].ContentType).To(Equal("application/vnd.microsoft.card.adaptive"))
	g.Expect(teams.Attachments[0].Content.Type).To(Equal("AdaptiveCard"))
	g.Expect(teams.Attachments[0].Content.Body[0]).To(HaveKeyWithValue("color", "Attention"))
	g.Expect(teams.Attachments[0].Content.Body[1]).To(HaveKeyWithValue("text", "Deployment/shop/api configured"))

	g.Expect((&Discord{URL: srv.URL + "/api/webhooks/1/x", Username: "plumb"}).Send(context.Background(), sample)).To(Succeed())
	var discord struct {
		Username string `json:"username"`
		Embeds   []struct {
			Title       string           `json:"title"`
			Description string           `json:"description"`
			Color       int              `json:"color"`
			Fields      []map[string]any `json:"fields"`
		} `json:"embeds"`
	}
	g.Expect(json.Unmarshal(s.bodies[1], &discord)).To(Succeed())
	g.Expect(discord.Username).To(Equal("plumb"))
	g.Expect(discord.Embeds[0].Title).To(Equal("Kustomization/shop/api: Succeeded"))
	g.Expect(discord.Embeds[0].Color).To(Equal(0x2eb886))
	g.Expect(discord.Embeds[0].Fields[0]).To(HaveKeyWithValue("value", "`main@sha1:1a2b3c4d5e6f`"))
}

func TestCommitStatus(t *testing.T) {
	g := NewWithT(t)
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var paths []string
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.EscapedPath())
		s.ServeHTTP(w, r)
	})
	srv.Config.Handler = record
	sha := "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
	failed := sample
	failed.Severity = "error"

	gh := &CommitStatus{Repository: "https://github.com/team/shop.git", APIURL: srv.URL, Token: "ghp_x"}
	g.Expect(gh.Send(context.Background(), failed)).To(Succeed())
	g.Expect(paths[0]).To(Equal("/repos/team/shop/statuses/" + sha))
	g.Expect(s.headers[0].Get("Authorization")).To(Equal("Bearer ghp_x"))
	var body map[string]any
	g.Expect(json.Unmarshal(s.bodies[0], &body)).To(Succeed())
	g.Expect(body).To(And(HaveKeyWithValue("state", "failure"), HaveKeyWithValue("context", "Kustomization/shop/api")))

	gl := &CommitStatus{GitLab: true, Repository: "https://gitlab.example.com/group/sub/shop", APIURL: srv.URL + "/api/v4", Token: "glpat"}
	g.Expect(gl.Send(context.Background(), sample)).To(Succeed())
	g.Expect(paths[1]).To(Equal("/api/v4/projects/group%2Fsub%2Fshop/statuses/" + sha))
	g.Expect(s.headers[1].Get("PRIVATE-TOKEN")).To(Equal("glpat"))
	g.Expect(json.Unmarshal(s.bodies[1], &body)).To(Succeed())
	g.Expect(body).To(And(HaveKeyWithValue("state", "success"), HaveKeyWithValue("name", "Kustomization/shop/api")))

	noCommit := sample
	noCommit.Revision = "v1.0.0@sha256:abcd"
	g.Expect(gh.Send(context.Background(), noCommit)).To(Succeed())
	g.Expect(paths).To(HaveLen(2), "no Git commit, no status")

	// Text.Name (a Provider's commitStatusExpr) names GitLab's status; its failure is the
	// delivery's, and nothing is posted.
	gl.Text.Name = func(_ context.Context, n Notification) (string, error) { return "deploy/" + n.Name, nil }
	g.Expect(gl.Send(context.Background(), sample)).To(Succeed())
	g.Expect(json.Unmarshal(s.bodies[2], &body)).To(Succeed())
	g.Expect(body).To(HaveKeyWithValue("name", "deploy/api"))
	gl.Text.Name = func(context.Context, Notification) (string, error) { return "", errors.New("no such key: env") }
	g.Expect(gl.Send(context.Background(), sample)).To(MatchError(ContainSubstring("commitStatusExpr: no such key: env")))
	g.Expect(paths).To(HaveLen(3))
}
