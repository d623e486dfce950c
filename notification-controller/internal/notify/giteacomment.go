package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"code.gitea.io/sdk/gitea"
)

// GiteaPullRequestComment keeps one comment per object up to date on the pull requests of a
// notification's commit (or the one its change_request metadata names), through Gitea's SDK:
// the open pull requests whose head is the commit, else the pull request that merged it; then
// the pull request's comments, then a new comment or an edit of the one that carries the
// object's marker. Repository is as Gitea's. Notifications without a Git commit revision, or
// whose commit has no pull request, are skipped.
type GiteaPullRequestComment struct {
	Repository string
	Token      string
	Client     *http.Client
	// Key keeps the comments of Providers apart (the Provider's UID).
	Key string

	mu       sync.Mutex
	username string // the token's user, once asked
}

// giteaPageSize is the most items Gitea gives in one page by default (MAX_RESPONSE_ITEMS).
const giteaPageSize = 50

// giteaNextPage is the page after page, or 0 at the end: the one Gitea's Link header names,
// else the next when the page was full (a Gitea that sends no Link header).
func giteaNextPage(resp *gitea.Response, page, items int) int {
	switch {
	case items == 0:
		return 0
	case resp.NextPage > 0:
		return resp.NextPage
	case resp.Header.Get("Link") == "" && items >= giteaPageSize:
		return page + 1
	}
	return 0
}

// Send implements Sender.
func (g *GiteaPullRequestComment) Send(ctx context.Context, n Notification) error {
	sha := Commit(n.Revision)
	index, explicit, err := explicitChangeRequest(n)
	if err != nil || (sha == "" && !explicit) {
		return err
	}
	c, owner, repo, err := giteaClient(ctx, "giteapullrequestcomment", g.Repository, g.Token, g.Client)
	if err != nil {
		return err
	}
	indexes := []int64{index}
	if !explicit {
		if indexes, err = giteaPullsOf(c, owner, repo, sha, g.Token); err != nil {
			return err
		}
	}
	if len(indexes) == 0 {
		return nil
	}
	username, err := g.user(c)
	if err != nil {
		return err
	}
	marker := commentMarker(g.Key, n)
	body := commentBody(marker, n)
	for _, index := range indexes {
		id, err := giteaFindComment(c, owner, repo, index, username, marker, g.Token)
		if err != nil {
			return err
		}
		var resp *gitea.Response
		if id == 0 {
			_, resp, err = c.CreateIssueComment(owner, repo, index, gitea.CreateIssueCommentOption{Body: body})
		} else {
			_, resp, err = c.EditIssueComment(owner, repo, id, gitea.EditIssueCommentOption{Body: body})
		}
		if err := giteaError(fmt.Sprintf("comment on pull request %d", index), resp, err, g.Token); err != nil {
			return err
		}
	}
	return nil
}

// giteaPullsOf chooses the pull requests of a commit: Gitea lists no pull requests by commit,
// so the open ones are read (at most maxPages pages) for those whose head is the commit, and
// else the one that merged it is asked for.
func giteaPullsOf(c *gitea.Client, owner, repo, sha, token string) ([]int64, error) {
	var crs []changeRequest
	for page, n := 1, 0; page > 0 && n < maxPages; n++ {
		prs, resp, err := c.ListRepoPullRequests(owner, repo, gitea.ListPullRequestsOptions{
			State: gitea.StateOpen, ListOptions: gitea.ListOptions{Page: page, PageSize: giteaPageSize}})
		if err := giteaError("open pull requests", resp, err, token); err != nil {
			return nil, err
		}
		for _, pr := range prs {
			if pr.Head != nil {
				crs = append(crs, changeRequest{number: pr.Index, open: true, head: pr.Head.Sha})
			}
		}
		page = giteaNextPage(resp, page, len(prs))
	}
	if open := changeRequestsOf(sha, crs); len(open) > 0 {
		return open, nil
	}
	pr, resp, err := c.GetCommitPullRequest(owner, repo, sha)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err := giteaError("pull request of commit "+sha[:12], resp, err, token); err != nil {
		return nil, err
	}
	if pr == nil || !pr.HasMerged {
		return nil, nil
	}
	return []int64{pr.Index}, nil
}

// giteaFindComment is the ID of the comment with the marker that username wrote, or 0.
func giteaFindComment(c *gitea.Client, owner, repo string, index int64, username, marker, token string) (int64, error) {
	for page, n := 1, 0; page > 0 && n < maxPages; n++ {
		comments, resp, err := c.ListIssueComments(owner, repo, index, gitea.ListIssueCommentOptions{
			ListOptions: gitea.ListOptions{Page: page, PageSize: giteaPageSize}})
		if err := giteaError(fmt.Sprintf("comments of pull request %d", index), resp, err, token); err != nil {
			return 0, err
		}
		for _, cm := range comments {
			if cm.Poster != nil && strings.EqualFold(cm.Poster.UserName, username) && strings.Contains(cm.Body, marker) {
				return cm.ID, nil
			}
		}
		page = giteaNextPage(resp, page, len(comments))
	}
	return 0, nil
}

// user is the login of the token's user, asked once.
func (g *GiteaPullRequestComment) user(c *gitea.Client) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.username == "" {
		u, resp, err := c.GetMyUserInfo()
		if err := giteaError("the token's user", resp, err, g.Token); err != nil {
			return "", err
		}
		g.username = u.UserName
	}
	return g.username, nil
}
