package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// GitHubDispatch sends a repository_dispatch event to a GitHub repository (POST
// /repos/{owner}/{repo}/dispatches), as Flux does: event_type is <Kind>/<name>.<namespace>
// and client_payload the notification in the shape of Flux's events, so a workflow
// `on: repository_dispatch: types: [Kustomization/app.apps]` reads
// github.event.client_payload.metadata.env as it would with Flux. Repository, APIURL, Token
// and TokenSource are as CommitStatus's.
type GitHubDispatch struct {
	Repository  string
	APIURL      string
	Token       string
	TokenSource func(ctx context.Context) (string, error)
	Client      *http.Client
}

// Send implements Sender.
func (g *GitHubDispatch) Send(ctx context.Context, n Notification) error {
	_, owner, repo, err := ownerRepo("githubdispatch", g.Repository)
	if err != nil {
		return err
	}
	token, err := tokenOf(ctx, g.Token, g.TokenSource)
	if err != nil {
		return err
	}
	base := g.APIURL
	if base == "" {
		base = APIFor(g.Repository)
	}
	endpoint := fmt.Sprintf("%s/repos/%s/%s/dispatches", strings.TrimSuffix(base, "/"), owner, repo)
	_, err = githubAPI(g.Client, token).call(ctx, http.MethodPost, endpoint, map[string]any{
		"event_type":     fmt.Sprintf("%s/%s.%s", n.Kind, n.Name, n.Namespace),
		"client_payload": FluxEvent(n),
	}, nil)
	return err
}
