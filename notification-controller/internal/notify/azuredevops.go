package notify

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// AzureDevOps sets a commit status on the commit of a notification's revision in Azure DevOps
// (POST {collection}/{project}/_apis/git/repositories/{repository}/commits/{commit}/statuses,
// API version 6.0, which Azure DevOps Server 2020 and later also serve). Repository is the
// repository's web URL: https://dev.azure.com/{org}/{project}/_git/{repository},
// https://{org}.visualstudio.com/{project}/_git/{repository}, or a server's
// https://{host}/{collection}/{project}/_git/{repository}. Token is a personal access token
// (basic auth with an empty user, as Azure DevOps documents), or with Bearer an Entra ID access
// token (a Provider's ServiceAccount's). The status's genre is "plumb",
// or "plumb:<summary>" with the Alert's summary, as Flux's is "fluxcd[:<summary>]".
// Notifications without a Git commit revision are skipped.
type AzureDevOps struct {
	Repository string
	Token      string
	// Bearer sends Token as an Entra ID access token rather than a personal access token.
	Bearer bool
	Client *http.Client
	// Text names and describes the status (a Provider's commitStatusExpr and
	// commitStatusDescriptionExpr).
	Text StatusText
}

// Send implements Sender.
func (a *AzureDevOps) Send(ctx context.Context, n Notification) error {
	sha := Commit(n.Revision)
	if sha == "" {
		return nil
	}
	project, repo, err := azureDevOpsRepo(a.Repository)
	if err != nil {
		return err
	}
	name, desc, err := a.Text.of(ctx, n)
	if err != nil {
		return err
	}
	state := "succeeded"
	if n.Severity == "error" {
		state = "failed"
	}
	genre := "plumb"
	if n.Summary != "" {
		genre += ":" + n.Summary
	}
	endpoint := fmt.Sprintf("%s/_apis/git/repositories/%s/commits/%s/statuses?api-version=6.0", project, url.PathEscape(repo), sha)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+a.Token))
	if a.Bearer {
		auth = "Bearer " + a.Token
	}
	api := restAPI{client: a.Client, secrets: []string{a.Token}, auth: func(r *http.Request) { r.Header.Set("Authorization", auth) }}
	_, err = api.call(ctx, http.MethodPost, endpoint, map[string]any{
		"state": state, "description": desc, "targetUrl": project + "/_git/" + url.PathEscape(repo),
		"context": map[string]string{"name": name, "genre": genre},
	}, nil)
	return err
}

// azureDevOpsRepo reads an Azure DevOps repository's web URL: the project's URL (collection
// and project) and the repository's name. https://dev.azure.com/{org}/_git/{repository} is the
// repository of the project of the same name.
func azureDevOpsRepo(repository string) (project, repo string, err error) {
	u, segs, err := parseRepository("azuredevops", repository)
	if err != nil {
		return "", "", err
	}
	k := -1
	for i, s := range segs {
		if s == "_git" {
			k = i
		}
	}
	if k < 1 || k+2 != len(segs) {
		return "", "", fmt.Errorf("azuredevops repository address %s is not <organization or collection>/<project>/_git/<repository>", u.Redacted())
	}
	repo = segs[k+1]
	collection, name := segs[:k-1], segs[k-1]
	if u.Host == "dev.azure.com" && k == 1 {
		collection, name = segs[:1], repo
	}
	escaped := make([]string, 0, len(collection)+1)
	for _, s := range append(slices.Clip(collection), name) {
		escaped = append(escaped, url.PathEscape(s))
	}
	return u.Scheme + "://" + u.Host + "/" + strings.Join(escaped, "/"), repo, nil
}
