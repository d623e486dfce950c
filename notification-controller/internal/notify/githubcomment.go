package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// GitHubPullRequestComment keeps one comment per object up to date on the pull requests of a
// notification's commit (or the one its change_request metadata names), through GitHub's REST
// API: the pull requests of a commit, then the pull request's comments, then a new comment or
// an edit of the one that carries the object's marker. Repository, APIURL, Token and
// TokenSource are as CommitStatus's. Notifications without a Git commit revision, or whose
// commit has no pull request, are skipped.
type GitHubPullRequestComment struct {
	Repository  string
	APIURL      string
	Token       string
	TokenSource func(ctx context.Context) (string, error)
	// App is set when TokenSource is a GitHub App's: its comments are the bot's, not a user's.
	App    bool
	Client *http.Client
	// Key keeps the comments of Providers apart (the Provider's UID).
	Key string

	mu    sync.Mutex
	login string // the token's user, once asked
}

// githubComment is an issue comment as GitHub lists it.
type githubComment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
	User struct {
		Login string `json:"login"`
		Type  string `json:"type"`
	} `json:"user"`
}

// Send implements Sender.
func (g *GitHubPullRequestComment) Send(ctx context.Context, n Notification) error {
	sha := Commit(n.Revision)
	number, explicit, err := explicitChangeRequest(n)
	if err != nil || (sha == "" && !explicit) {
		return err
	}
	_, owner, repo, err := ownerRepo("githubpullrequestcomment", g.Repository)
	if err != nil {
		return err
	}
	token, err := tokenOf(ctx, g.Token, g.TokenSource)
	if err != nil {
		return err
	}
	api := githubAPI(g.Client, token)
	base := g.APIURL
	if base == "" {
		base = APIFor(g.Repository)
	}
	repoAPI := fmt.Sprintf("%s/repos/%s/%s", strings.TrimSuffix(base, "/"), owner, repo)
	numbers := []int64{number}
	if !explicit {
		var pulls []struct {
			Number   int64   `json:"number"`
			State    string  `json:"state"`
			MergedAt *string `json:"merged_at"`
			Head     struct {
				SHA string `json:"sha"`
			} `json:"head"`
		}
		if _, err := api.call(ctx, http.MethodGet, repoAPI+"/commits/"+sha+"/pulls?per_page=100", nil, &pulls); err != nil {
			return fmt.Errorf("pull requests of commit %s: %w", sha[:12], err)
		}
		var crs []changeRequest
		for _, p := range pulls {
			crs = append(crs, changeRequest{number: p.Number, open: p.State == "open", merged: p.MergedAt != nil, head: p.Head.SHA})
		}
		numbers = changeRequestsOf(sha, crs)
	}
	if len(numbers) == 0 {
		return nil
	}
	mine, err := g.author(ctx, api, base)
	if err != nil {
		return err
	}
	marker := commentMarker(g.Key, n)
	body := map[string]string{"body": commentBody(marker, n)}
	for _, num := range numbers {
		c, found, err := findInPages(ctx, api, fmt.Sprintf("%s/issues/%d/comments?per_page=100", repoAPI, num),
			func(c githubComment) bool { return mine(c) && strings.Contains(c.Body, marker) })
		if err != nil {
			return fmt.Errorf("comments of pull request %d: %w", num, err)
		}
		if !found {
			_, err = api.call(ctx, http.MethodPost, fmt.Sprintf("%s/issues/%d/comments", repoAPI, num), body, nil)
		} else {
			_, err = api.call(ctx, http.MethodPatch, fmt.Sprintf("%s/issues/comments/%d", repoAPI, c.ID), body, nil)
		}
		if err != nil {
			return fmt.Errorf("comment on pull request %d: %w", num, err)
		}
	}
	return nil
}

// author says whether a comment is this Provider's to edit: written by the token's user, or
// for a GitHub App by a bot (GitHub gives an app's comments a user of type Bot, and no person
// can write as one).
func (g *GitHubPullRequestComment) author(ctx context.Context, api restAPI, base string) (func(githubComment) bool, error) {
	if g.App {
		return func(c githubComment) bool { return c.User.Type == "Bot" }, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.login == "" {
		var user struct {
			Login string `json:"login"`
		}
		if _, err := api.call(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/user", nil, &user); err != nil {
			return nil, fmt.Errorf("the token's user: %w", err)
		}
		g.login = user.Login
	}
	login := g.login
	return func(c githubComment) bool { return strings.EqualFold(c.User.Login, login) }, nil
}
