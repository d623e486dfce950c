package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// GitLabMergeRequestComment keeps one note per object up to date on the merge requests of a
// notification's commit (or the one its change_request metadata names), through GitLab's REST
// API: the merge requests of a commit, then the merge request's notes, then a new note or an
// edit of the one that carries the object's marker. Repository is the project's web URL
// (https://gitlab.example.com/group/sub/app); the API is <host>/api/v4, or APIURL.
// Notifications without a Git commit revision, or whose commit has no merge request, are
// skipped.
type GitLabMergeRequestComment struct {
	Repository string
	APIURL     string
	Token      string
	Client     *http.Client
	// Key keeps the notes of Providers apart (the Provider's UID).
	Key string

	mu       sync.Mutex
	username string // the token's user, once asked
}

// gitlabNote is a merge request note as GitLab lists it.
type gitlabNote struct {
	ID     int64  `json:"id"`
	Body   string `json:"body"`
	System bool   `json:"system"`
	Author struct {
		Username string `json:"username"`
	} `json:"author"`
}

// Send implements Sender.
func (g *GitLabMergeRequestComment) Send(ctx context.Context, n Notification) error {
	sha := Commit(n.Revision)
	iid, explicit, err := explicitChangeRequest(n)
	if err != nil || (sha == "" && !explicit) {
		return err
	}
	u, _, err := parseRepository("gitlabmergerequestcomment", g.Repository)
	if err != nil {
		return err
	}
	base := g.APIURL
	if base == "" {
		base = u.Scheme + "://" + u.Host + "/api/v4"
	}
	base = strings.TrimSuffix(base, "/")
	project := base + "/projects/" + url.PathEscape(repoPath(u))
	api := gitlabAPI(g.Client, g.Token)
	iids := []int64{iid}
	if !explicit {
		var mrs []struct {
			IID   int64  `json:"iid"`
			State string `json:"state"`
			SHA   string `json:"sha"`
		}
		if _, err := api.call(ctx, http.MethodGet, project+"/repository/commits/"+sha+"/merge_requests", nil, &mrs); err != nil {
			return fmt.Errorf("merge requests of commit %s: %w", sha[:12], err)
		}
		var crs []changeRequest
		for _, mr := range mrs {
			crs = append(crs, changeRequest{number: mr.IID, open: mr.State == "opened", merged: mr.State == "merged", head: mr.SHA})
		}
		iids = changeRequestsOf(sha, crs)
	}
	if len(iids) == 0 {
		return nil
	}
	username, err := g.user(ctx, api, base)
	if err != nil {
		return err
	}
	marker := commentMarker(g.Key, n)
	body := map[string]string{"body": commentBody(marker, n)}
	for _, iid := range iids {
		notes := fmt.Sprintf("%s/merge_requests/%d/notes", project, iid)
		note, found, err := findInPages(ctx, api, notes+"?sort=asc&order_by=created_at&per_page=100", func(nt gitlabNote) bool {
			return !nt.System && nt.Author.Username == username && strings.Contains(nt.Body, marker)
		})
		if err != nil {
			return fmt.Errorf("notes of merge request !%d: %w", iid, err)
		}
		if found {
			_, err = api.call(ctx, http.MethodPut, fmt.Sprintf("%s/%d", notes, note.ID), body, nil)
		} else {
			_, err = api.call(ctx, http.MethodPost, notes, body, nil)
		}
		if err != nil {
			return fmt.Errorf("note on merge request !%d: %w", iid, err)
		}
	}
	return nil
}

// user is the username of the token's user (a project or group access token has a bot user of
// its own), asked once.
func (g *GitLabMergeRequestComment) user(ctx context.Context, api restAPI, base string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.username == "" {
		var user struct {
			Username string `json:"username"`
		}
		if _, err := api.call(ctx, http.MethodGet, base+"/user", nil, &user); err != nil {
			return "", fmt.Errorf("the token's user: %w", err)
		}
		g.username = user.Username
	}
	return g.username, nil
}
