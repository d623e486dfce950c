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
	// Text names and describes the status (a Provider's commitStatusExpr and
	// commitStatusDescriptionExpr) instead of <kind>/<namespace>/<name> and <reason>: <message>.
	Text StatusText
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
	typ := "github"
	if c.GitLab {
		typ = "gitlab"
	}
	u, _, err := parseRepository(typ, c.Repository)
	if err != nil {
		return err
	}
	project := repoPath(u)
	name, desc, err := c.Text.of(ctx, n)
	if err != nil {
		return err
	}
	token, err := tokenOf(ctx, c.Token, c.TokenSource)
	if err != nil {
		return err
	}
	if c.GitLab {
		api := c.APIURL
		if api == "" {
			api = u.Scheme + "://" + u.Host + "/api/v4"
		}
		state := "success"
		if n.Severity == "error" {
			state = "failed"
		}
		endpoint := fmt.Sprintf("%s/projects/%s/statuses/%s", strings.TrimSuffix(api, "/"), url.PathEscape(project), sha)
		_, err = gitlabAPI(c.Client, token).call(ctx, http.MethodPost, endpoint,
			map[string]string{"state": state, "name": name, "description": desc}, nil)
		return err
	}
	api := c.APIURL
	if api == "" {
		api = APIFor(c.Repository)
	}
	state := "success"
	if n.Severity == "error" {
		state = "failure"
	}
	endpoint := fmt.Sprintf("%s/repos/%s/statuses/%s", strings.TrimSuffix(api, "/"), project, sha)
	_, err = githubAPI(c.Client, token).call(ctx, http.MethodPost, endpoint,
		map[string]string{"state": state, "context": name, "description": desc}, nil)
	return err
}

// tokenOf is the token of one delivery: the source's when there is one.
func tokenOf(ctx context.Context, token string, source func(context.Context) (string, error)) (string, error) {
	if source == nil {
		return token, nil
	}
	return source(ctx)
}

// githubAPI calls GitHub's REST API with a token (a personal access token or an app's
// installation token) as GitHub documents it.
func githubAPI(c *http.Client, token string) restAPI {
	return restAPI{client: c, secrets: []string{token}, auth: func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Accept", "application/vnd.github+json")
		r.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	}}
}

// gitlabAPI calls GitLab's REST API with a personal, group or project access token.
func gitlabAPI(c *http.Client, token string) restAPI {
	return restAPI{client: c, secrets: []string{token}, auth: func(r *http.Request) {
		r.Header.Set("PRIVATE-TOKEN", token)
	}}
}
