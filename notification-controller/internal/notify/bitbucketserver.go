package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// BitbucketServer sets a build status on the commit of a notification's revision in Bitbucket
// Server or Data Center (POST /rest/api/latest/projects/{key}/repos/{slug}/commits/{commit}/builds,
// Bitbucket 7.4 and later). Repository is the repository's HTTPS clone URL
// (https://bitbucket.example.com/scm/PROJ/app.git, as Flux has it) or its browse URL
// (https://bitbucket.example.com/projects/PROJ/repos/app); a Bitbucket under a context path
// works too. Token (an HTTP access token, sent as a bearer token) wins over Username and
// Password (basic auth). Notifications without a Git commit revision are skipped.
type BitbucketServer struct {
	Repository string
	Token      string
	Username   string
	Password   string
	Client     *http.Client
	// Text names and describes the status (a Provider's commitStatusExpr and
	// commitStatusDescriptionExpr).
	Text StatusText
}

// Send implements Sender.
func (b *BitbucketServer) Send(ctx context.Context, n Notification) error {
	sha := Commit(n.Revision)
	if sha == "" {
		return nil
	}
	base, project, slug, err := bitbucketServerRepo(b.Repository)
	if err != nil {
		return err
	}
	repoPath := fmt.Sprintf("/projects/%s/repos/%s", url.PathEscape(project), url.PathEscape(slug))
	endpoint := base + "/rest/api/latest" + repoPath + "/commits/" + sha + "/builds"
	api := restAPI{client: b.Client, secrets: []string{b.Token, b.Password}, auth: func(r *http.Request) {
		if b.Token != "" {
			r.Header.Set("Authorization", "Bearer "+b.Token)
		} else {
			r.SetBasicAuth(b.Username, b.Password)
		}
		// Bitbucket refuses a POST with basic auth as a possible XSRF without it.
		r.Header.Set("X-Atlassian-Token", "no-check")
	}}
	return postBuildStatus(ctx, api, endpoint, base+repoPath, b.Text, n)
}

// bitbucketServerRepo reads a Bitbucket Server repository's clone or browse URL: the server's
// base URL (with its context path), the project key and the repository slug.
func bitbucketServerRepo(repository string) (base, project, slug string, err error) {
	u, segs, err := parseRepository("bitbucketserver", repository)
	if err != nil {
		return "", "", "", err
	}
	for i := len(segs) - 1; i >= 0; i-- {
		switch {
		case segs[i] == "scm" && i+3 == len(segs):
			project, slug, segs = segs[i+1], segs[i+2], segs[:i]
		case segs[i] == "projects" && i+3 < len(segs) && segs[i+2] == "repos":
			project, slug, segs = segs[i+1], segs[i+3], segs[:i]
		default:
			continue
		}
		base = u.Scheme + "://" + u.Host
		if len(segs) > 0 {
			base += "/" + strings.Join(segs, "/")
		}
		return base, project, slug, nil
	}
	return "", "", "", fmt.Errorf("bitbucketserver repository address %s is neither a clone URL (<host>/scm/<project>/<repository>.git) nor a browse URL (<host>/projects/<project>/repos/<repository>)", u.Redacted())
}
