// Package githosttest is a loopback Git host for one repository that speaks the REST API of
// GitHub, GitLab or Gitea as each documents it, for what notification-controller calls: the
// token's user, the pull (merge) requests of a commit, a pull request's comments (paged, with
// the host's own pagination), new and edited comments, commit statuses and (GitHub)
// repository_dispatch. It accepts only its token, sent as the host wants it, and answers
// anything else with the host's 401. Failures can be queued; every request is recorded.
package githosttest

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Flavour is the API a Server speaks.
type Flavour string

// The flavours.
const (
	GitHub Flavour = "github"
	GitLab Flavour = "gitlab"
	Gitea  Flavour = "gitea"
)

// Pull is a pull (merge) request: open, closed or merged, with its head commit and, when merged,
// its merge commit.
type Pull struct {
	Number      int64
	State       string
	Head        string
	MergeCommit string
}

// Comment is a comment on a pull request.
type Comment struct {
	ID     int64
	Number int64
	Author string
	// Bot marks a GitHub App's comment (user of type Bot).
	Bot  bool
	Body string
}

// Status is a commit status as the host received it.
type Status struct {
	SHA, State, Context, Description string
}

// Request is a request the server received.
type Request struct {
	Method string
	// Path is the escaped path; Query the raw query.
	Path, Query string
	Header      http.Header
	Body        []byte
}

// Failure is an answer to give instead of the next request's.
type Failure struct {
	Status     int
	RetryAfter string
}

// Server is the loopback host of the repository Owner/Repo.
type Server struct {
	Flavour Flavour
	// URL is the host's base URL, http(s)://127.0.0.1:port: the repository's web URL is
	// URL/Owner/Repo. API is the base of its REST API (GitHub: URL, as an APIURL; GitLab:
	// URL/api/v4; Gitea: URL/api/v1).
	URL, API    string
	Owner, Repo string
	// Token is the only credential accepted; Login is its user.
	Token, Login string
	// CAPEM is the server's certificate (PEM) when it serves HTTPS.
	CAPEM []byte
	// PageSize is the size of a page of comments (default 2, so that paging is exercised).
	PageSize int

	mu         sync.Mutex
	pulls      []Pull
	comments   []Comment
	statuses   []Status
	dispatches []map[string]any
	requests   []Request
	failures   []Failure
	nextID     int64
}

// New starts a host of the flavour over plain HTTP for the test.
func New(t testing.TB, f Flavour) *Server {
	t.Helper()
	return start(t, f, false)
}

// NewTLS is New over HTTPS; CAPEM is the certificate to trust.
func NewTLS(t testing.TB, f Flavour) *Server {
	t.Helper()
	return start(t, f, true)
}

func start(t testing.TB, f Flavour, useTLS bool) *Server {
	t.Helper()
	s := &Server{Flavour: f, Owner: "acme", Repo: "shop", Token: "s3cret-token", Login: "plumb-bot", PageSize: 2, nextID: 100}
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(s.mux())
		s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	} else {
		srv = httptest.NewServer(s.mux())
	}
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.API = map[Flavour]string{GitHub: s.URL, GitLab: s.URL + "/api/v4", Gitea: s.URL + "/api/v1"}[f]
	return s
}

// Repository is the repository's web URL.
func (s *Server) Repository() string { return s.URL + "/" + s.Owner + "/" + s.Repo }

// AddPull adds a pull request.
func (s *Server) AddPull(p Pull) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls = append(s.pulls, p)
}

// AddComment adds a comment written by someone, and returns its ID.
func (s *Server) AddComment(c Comment) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	c.ID = s.nextID
	s.comments = append(s.comments, c)
	return c.ID
}

// Fail queues answers for the next requests.
func (s *Server) Fail(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f...)
}

// Comments are the comments of a pull request, in order.
func (s *Server) Comments(number int64) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.comments {
		if c.Number == number {
			out = append(out, c)
		}
	}
	return out
}

// Statuses are the commit statuses received.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.statuses)
}

// Dispatches are the bodies of the repository_dispatch requests received.
func (s *Server) Dispatches() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dispatches)
}

// Requests are the requests received, failed ones included.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) mux() http.Handler {
	m := http.NewServeMux()
	repo := map[Flavour]string{GitHub: "/repos/{owner}/{repo}", GitLab: "/api/v4/projects/{project}", Gitea: "/api/v1/repos/{owner}/{repo}"}[s.Flavour]
	user := map[Flavour]string{GitHub: "/user", GitLab: "/api/v4/user", Gitea: "/api/v1/user"}[s.Flavour]
	m.HandleFunc("GET "+user, s.user)
	// GitHub and Gitea keep a pull request's comments as its issue's; GitLab as its notes.
	comments, edit := repo+"/issues/{number}/comments", "PATCH "+repo+"/issues/comments/{id}"
	if s.Flavour == GitLab {
		comments, edit = repo+"/merge_requests/{number}/notes", "PUT "+repo+"/merge_requests/{number}/notes/{id}"
	}
	m.HandleFunc("GET "+comments, s.listComments)
	m.HandleFunc("POST "+comments, s.createComment)
	m.HandleFunc(edit, s.editComment)
	m.HandleFunc("POST "+repo+"/statuses/{sha}", s.status)
	switch s.Flavour {
	case GitHub:
		m.HandleFunc("GET "+repo+"/commits/{sha}/pulls", s.pullsOfCommit)
		m.HandleFunc("POST "+repo+"/dispatches", s.dispatch)
	case GitLab:
		m.HandleFunc("GET "+repo+"/repository/commits/{sha}/merge_requests", s.pullsOfCommit)
	case Gitea:
		m.HandleFunc("GET "+repo+"/pulls", s.openPulls)
		m.HandleFunc("GET "+repo+"/commits/{sha}/pull", s.mergedPull)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		var fail *Failure
		if len(s.failures) > 0 {
			fail = &s.failures[0]
			s.failures = s.failures[1:]
		}
		s.mu.Unlock()
		switch {
		case fail != nil:
			if fail.RetryAfter != "" {
				w.Header().Set("Retry-After", fail.RetryAfter)
			}
			writeJSON(w, fail.Status, map[string]string{"message": http.StatusText(fail.Status)})
		case !s.authorized(r):
			writeJSON(w, http.StatusUnauthorized, map[Flavour]any{GitHub: map[string]string{"message": "Bad credentials"},
				GitLab: map[string]string{"message": "401 Unauthorized"}, Gitea: map[string]string{"message": "token is required"}}[s.Flavour])
		case !s.ours(r):
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		default:
			m.ServeHTTP(w, r)
		}
	})
}

// authorized checks the credential as the host reads it.
func (s *Server) authorized(r *http.Request) bool {
	switch s.Flavour {
	case GitLab:
		return r.Header.Get("PRIVATE-TOKEN") == s.Token
	case Gitea:
		return r.Header.Get("Authorization") == "token "+s.Token
	}
	return r.Header.Get("Authorization") == "Bearer "+s.Token
}

// ours says whether a request is about this repository (or the user).
func (s *Server) ours(r *http.Request) bool {
	p := r.URL.EscapedPath()
	switch s.Flavour {
	case GitLab:
		return p == "/api/v4/user" || strings.HasPrefix(p, "/api/v4/projects/"+url.PathEscape(s.Owner+"/"+s.Repo)+"/")
	case Gitea:
		return p == "/api/v1/user" || strings.HasPrefix(p, "/api/v1/repos/"+s.Owner+"/"+s.Repo+"/")
	}
	return p == "/user" || strings.HasPrefix(p, "/repos/"+s.Owner+"/"+s.Repo+"/")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) user(w http.ResponseWriter, _ *http.Request) {
	key := map[Flavour]string{GitHub: "login", GitLab: "username", Gitea: "login"}[s.Flavour]
	writeJSON(w, http.StatusOK, map[string]any{"id": 1, key: s.Login})
}

// pull is a pull request in the flavour's JSON.
func (s *Server) pull(p Pull) map[string]any {
	switch s.Flavour {
	case GitLab:
		state := map[string]string{"open": "opened", "closed": "closed", "merged": "merged"}[p.State]
		return map[string]any{"iid": p.Number, "id": 1000 + p.Number, "state": state, "sha": p.Head, "merge_commit_sha": nilIfEmpty(p.MergeCommit)}
	case Gitea:
		state := "open"
		if p.State != "open" {
			state = "closed"
		}
		return map[string]any{"number": p.Number, "state": state, "merged": p.State == "merged",
			"merge_commit_sha": nilIfEmpty(p.MergeCommit), "head": map[string]any{"sha": p.Head, "ref": "feature"}}
	}
	state := "open"
	var merged any
	if p.State != "open" {
		state = "closed"
	}
	if p.State == "merged" {
		merged = "2026-01-01T00:00:00Z"
	}
	return map[string]any{"number": p.Number, "state": state, "merged_at": merged, "head": map[string]any{"sha": p.Head, "ref": "feature"}}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// pullsOfCommit lists the pull requests whose head or merge commit is the commit (GitHub's
// and GitLab's pull requests of a commit).
func (s *Server) pullsOfCommit(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	s.mu.Lock()
	out := []map[string]any{}
	for _, p := range s.pulls {
		if p.Head == sha || p.MergeCommit == sha {
			out = append(out, s.pull(p))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// openPulls is Gitea's list of pull requests, of state=open only as asked.
func (s *Server) openPulls(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("state") != "open" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "this test host lists open pull requests only"})
		return
	}
	s.mu.Lock()
	out := []map[string]any{}
	for _, p := range s.pulls {
		if p.State == "open" {
			out = append(out, s.pull(p))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// mergedPull is Gitea's pull request merged by a commit.
func (s *Server) mergedPull(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pulls {
		if p.State == "merged" && p.MergeCommit == r.PathValue("sha") {
			writeJSON(w, http.StatusOK, s.pull(p))
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "pull request does not exist"})
}

// comment is a comment in the flavour's JSON.
func (s *Server) comment(c Comment) map[string]any {
	switch s.Flavour {
	case GitLab:
		return map[string]any{"id": c.ID, "body": c.Body, "system": false, "author": map[string]any{"username": c.Author}}
	case Gitea:
		return map[string]any{"id": c.ID, "body": c.Body, "user": map[string]any{"login": c.Author}}
	}
	typ := "User"
	if c.Bot {
		typ = "Bot"
	}
	return map[string]any{"id": c.ID, "body": c.Body, "user": map[string]any{"login": c.Author, "type": typ}}
}

// listComments pages a pull request's comments (GitHub and GitLab with per_page and page, Gitea
// with limit and page) with a Link header to the next page, as all three send.
func (s *Server) listComments(w http.ResponseWriter, r *http.Request) {
	number, _ := strconv.ParseInt(r.PathValue("number"), 10, 64)
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	size := s.PageSize
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 && s.Flavour == Gitea {
		size = min(l, s.PageSize) // Gitea caps limit at its MAX_RESPONSE_ITEMS
	}
	all := s.Comments(number)
	from, to := min((page-1)*size, len(all)), min(page*size, len(all))
	out := []map[string]any{}
	for _, c := range all[from:to] {
		out = append(out, s.comment(c))
	}
	if to < len(all) {
		next := *r.URL
		q.Set("page", strconv.Itoa(page+1))
		next.RawQuery = q.Encode()
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s://%s%s>; rel="next"`, scheme, r.Host, next.RequestURI()))
	}
	writeJSON(w, http.StatusOK, out)
}

// createComment adds a comment by the token's user (a bot's when the user's login says so).
func (s *Server) createComment(w http.ResponseWriter, r *http.Request) {
	number, _ := strconv.ParseInt(r.PathValue("number"), 10, 64)
	body, ok := commentBody(w, r)
	if !ok {
		return
	}
	id := s.AddComment(Comment{Number: number, Author: s.Login, Bot: strings.HasSuffix(s.Login, "[bot]"), Body: body})
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "body": body})
}

// commentBody reads a new comment body from a request, or answers 422 as the hosts do when it
// is missing.
func commentBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	var in struct {
		Body string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "body is required"})
		return "", false
	}
	return in.Body, true
}

// editComment replaces a comment's body; the token's user may edit only its own.
func (s *Server) editComment(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	body, ok := commentBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.comments {
		if s.comments[i].ID != id {
			continue
		}
		if s.comments[i].Author != s.Login {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "you may edit only your own comments"})
			return
		}
		s.comments[i].Body = body
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "body": body})
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
}

// status records a commit status, with the field names of the flavour (GitHub's and Gitea's
// context, GitLab's name).
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	var in struct {
		State       string `json:"state"`
		Context     string `json:"context"`
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.State == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "state is required"})
		return
	}
	name := in.Context
	if s.Flavour == GitLab {
		name = in.Name
	}
	s.mu.Lock()
	s.statuses = append(s.statuses, Status{SHA: r.PathValue("sha"), State: in.State, Context: name, Description: in.Description})
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"id": 1, "state": in.State})
}

// dispatch records a repository_dispatch; GitHub answers 204.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in["event_type"] == nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "event_type is required"})
		return
	}
	s.mu.Lock()
	s.dispatches = append(s.dispatches, in)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
