package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"code.gitea.io/sdk/gitea"
)

// Gitea sets a commit status on the commit of a notification's revision through Gitea's SDK.
// Repository is the repository's web URL (https://gitea.example.com/org/app; a Gitea served
// under a path, https://example.com/git/org/app, works too): the API is found from it.
// Notifications without a Git commit revision are skipped.
type Gitea struct {
	Repository string
	Token      string
	Client     *http.Client
	// Text names and describes the status (a Provider's commitStatusExpr and
	// commitStatusDescriptionExpr).
	Text StatusText
}

// Send implements Sender.
func (g *Gitea) Send(ctx context.Context, n Notification) error {
	sha := Commit(n.Revision)
	if sha == "" {
		return nil
	}
	c, owner, repo, err := giteaClient(ctx, "gitea", g.Repository, g.Token, g.Client)
	if err != nil {
		return err
	}
	name, desc, err := g.Text.of(ctx, n)
	if err != nil {
		return err
	}
	state := gitea.StatusSuccess
	if n.Severity == "error" {
		state = gitea.StatusFailure
	}
	_, resp, err := c.CreateStatus(owner, repo, sha, gitea.CreateStatusOption{State: state, Context: name, Description: desc})
	return giteaError("commit status", resp, err, g.Token)
}

// giteaClient is an SDK client of the Gitea of a repository's web URL, for one delivery (the
// SDK takes its context per client). It skips the SDK's version probe: one request less, and
// every call made here is older than the oldest Gitea still supported.
func giteaClient(ctx context.Context, typ, repository, token string, hc *http.Client) (*gitea.Client, string, string, error) {
	base, owner, repo, err := ownerRepo(typ, repository)
	if err != nil {
		return nil, "", "", err
	}
	c, err := gitea.NewClient(base.String(), gitea.SetGiteaVersion(""), gitea.SetContext(ctx), gitea.SetToken(token),
		gitea.SetHTTPClient(httpClient(hc)), gitea.SetUserAgent("plumb-notification-controller"))
	if err != nil {
		return nil, "", "", fmt.Errorf("%s client for %s: %w", typ, base.Redacted(), err)
	}
	return c, owner, repo, nil
}

// giteaError classifies an SDK call's failure as restAPI does: a network error, 429, 5xx and
// a rate limit's 403 are retried, others are not. The message names the call, the host, the
// status and Gitea's message.
func giteaError(what string, resp *gitea.Response, err error, token string) error {
	if err == nil {
		return nil
	}
	if resp == nil || resp.Response == nil {
		err = redactErr(err)
		if refused(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		var re *RetryableError
		if errors.As(err, &re) {
			return err
		}
		return &RetryableError{Err: fmt.Errorf("%s: %w", what, err)}
	}
	host := resp.Request.URL.Host
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if token != "" {
		msg = strings.ReplaceAll(msg, token, "***")
	}
	return classified(resp.StatusCode, resp.Header, fmt.Errorf("%s: %s answered %s: %s", what, host, resp.Status, clip(msg, 200)))
}
