package notify

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Bitbucket sets a build status on the commit of a notification's revision in Bitbucket Cloud
// (POST /2.0/repositories/{workspace}/{repo}/commit/{commit}/statuses/build). Repository is the
// repository's web URL (https://bitbucket.org/workspace/app); the API is api.bitbucket.org, or
// APIURL. Token is `<username>:<app-password>` (basic auth, as Flux has it) or an access token
// (a repository, project or workspace access token, sent as a bearer token). Notifications
// without a Git commit revision are skipped.
type Bitbucket struct {
	Repository string
	APIURL     string
	Token      string
	Client     *http.Client
	// Text names and describes the status (a Provider's commitStatusExpr and
	// commitStatusDescriptionExpr).
	Text StatusText
}

// Send implements Sender.
func (b *Bitbucket) Send(ctx context.Context, n Notification) error {
	sha := Commit(n.Revision)
	if sha == "" {
		return nil
	}
	web, workspace, repo, err := ownerRepo("bitbucket", b.Repository)
	if err != nil {
		return err
	}
	api := b.APIURL
	if api == "" {
		api = "https://api.bitbucket.org"
	}
	endpoint := fmt.Sprintf("%s/2.0/repositories/%s/%s/commit/%s/statuses/build", strings.TrimSuffix(api, "/"),
		url.PathEscape(workspace), url.PathEscape(repo), sha)
	web.Path += "/" + workspace + "/" + repo
	return postBuildStatus(ctx, bitbucketAPI(b.Client, b.Token), endpoint, web.String(), b.Text, n)
}

// postBuildStatus posts a notification's build status to a Bitbucket Cloud or Server endpoint:
// both take the same body, keyed by the status name, SUCCESSFUL or FAILED by the notification's
// severity, and linking to the repository at link.
func postBuildStatus(ctx context.Context, api restAPI, endpoint, link string, text StatusText, n Notification) error {
	name, desc, err := text.of(ctx, n)
	if err != nil {
		return err
	}
	state := "SUCCESSFUL"
	if n.Severity == "error" {
		state = "FAILED"
	}
	_, err = api.call(ctx, http.MethodPost, endpoint, map[string]string{
		"key": statusKey(name), "state": state, "name": name, "description": desc, "url": link,
	}, nil)
	return err
}

// statusKey is a Bitbucket build status's key for a status name: its SHA-1 in hex, as Flux
// makes it, within the 40 characters Bitbucket allows whatever the name.
func statusKey(name string) string {
	sum := sha1.Sum([]byte(name))
	return hex.EncodeToString(sum[:])
}

// bitbucketAPI calls a Bitbucket API with `<username>:<password>` as basic auth, or with any
// other token as a bearer token.
func bitbucketAPI(c *http.Client, token string) restAPI {
	user, password, basic := strings.Cut(token, ":")
	return restAPI{client: c, secrets: []string{token, password}, auth: func(r *http.Request) {
		if basic {
			r.SetBasicAuth(user, password)
		} else {
			r.Header.Set("Authorization", "Bearer "+token)
		}
	}}
}
