package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CommitStatus sets a status on the commit of a notification's revision: GitHub (statuses
// API) or GitLab (commit statuses API). Repository is the repository's web URL
// (https://github.com/org/app, https://gitlab.example.com/group/app); the API is found from it
// (api.github.com for github.com, <host>/api/v3 for GitHub Enterprise, <host>/api/v4 for
// GitLab), or given as APIURL. Notifications without a Git commit revision are skipped.
type CommitStatus struct {
	GitLab     bool
	Repository string
	APIURL     string
	Token      string
	// TokenSource, when set, gives the token of each delivery instead of Token (a GitHub App's
	// installation token, renewed before it expires). Its errors are returned as they are.
	TokenSource func(ctx context.Context) (string, error)
	Client      *http.Client
	// StatusID, when set, names the status of a notification (GitHub's context, GitLab's name)
	// instead of <kind>/<namespace>/<name>: a Provider's commitStatusExpr.
	StatusID func(ctx context.Context, n Notification) (string, error)
}

// APIFor is the GitHub API of a repository's web URL: api.github.com for github.com,
// <host>/api/v3 for GitHub Enterprise Server.
func APIFor(repository string) string {
	u, err := url.Parse(repository)
	if err != nil || u.Host == "" || u.Host == "github.com" {
		return "https://api.github.com"
	}
	return u.Scheme + "://" + u.Host + "/api/v3"
}

// Commit returns the Git commit of a revision (main@sha1:<hex>, sha1:<hex>), or "".
func Commit(revision string) string {
	_, sha, ok := strings.Cut(revision, "sha1:")
	if !ok || len(sha) != 40 {
		return ""
	}
	return sha
}

// Send implements Sender.
func (c *CommitStatus) Send(ctx context.Context, n Notification) error {
	sha := Commit(n.Revision)
	if sha == "" {
		return nil
	}
	u, err := url.Parse(c.Repository)
	if err != nil || u.Host == "" {
		return fmt.Errorf("repository address %q is not a URL", c.Repository)
	}
	project := strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	statusContext := fmt.Sprintf("%s/%s/%s", n.Kind, n.Namespace, n.Name)
	if c.StatusID != nil {
		if statusContext, err = c.StatusID(ctx, n); err != nil {
			return fmt.Errorf("commitStatusExpr: %w", err)
		}
	}
	desc := truncate(n.Reason+": "+n.Message, 130)
	var endpoint string
	var payload map[string]any
	if c.GitLab {
		api := c.APIURL
		if api == "" {
			api = u.Scheme + "://" + u.Host + "/api/v4"
		}
		state := "success"
		if n.Severity == "error" {
			state = "failed"
		}
		endpoint = fmt.Sprintf("%s/projects/%s/statuses/%s", strings.TrimSuffix(api, "/"), url.PathEscape(project), sha)
		payload = map[string]any{"state": state, "name": statusContext, "description": desc}
	} else {
		api := c.APIURL
		if api == "" {
			api = APIFor(c.Repository)
		}
		state := "success"
		if n.Severity == "error" {
			state = "failure"
		}
		endpoint = fmt.Sprintf("%s/repos/%s/statuses/%s", strings.TrimSuffix(api, "/"), project, sha)
		payload = map[string]any{"state": state, "context": statusContext, "description": desc}
	}
	token := c.Token
	if c.TokenSource != nil {
		if token, err = c.TokenSource(ctx); err != nil {
			return err
		}
	}
	client := &http.Client{Transport: tokenTransport{gitlab: c.GitLab, token: token, next: httpClient(c.Client).Transport}, CheckRedirect: sameHost}
	return postJSON(ctx, client, endpoint, payload)
}

// tokenTransport adds the API token as each service wants it.
type tokenTransport struct {
	gitlab bool
	token  string
	next   http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.gitlab {
		r.Header.Set("PRIVATE-TOKEN", t.token)
	} else {
		r.Header.Set("Authorization", "Bearer "+t.token)
		r.Header.Set("Accept", "application/vnd.github+json")
	}
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(r)
}
