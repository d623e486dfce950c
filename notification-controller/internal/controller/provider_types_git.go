package controller

import (
	"fmt"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

// needRepositoryAndToken is the error of a Git host Provider without a repository address or a
// credential. It names the GitHub App types itself: reading providerTypes here would make the
// table's initialization refer to itself.
func needRepositoryAndToken(c senderConfig) error {
	typ := c.Provider.Spec.Type
	app := typ == notifyv1.GitHubProvider || typ == notifyv1.GitHubPullRequestCommentProvider || typ == notifyv1.GitHubDispatchProvider
	switch {
	case c.Address == "" && c.TokenSource != nil:
		return &secretError{fmt.Sprintf("%s needs the repository address", typ)}
	case c.Address != "" && (c.Token != "" || c.TokenSource != nil):
		return nil
	case app:
		return &secretError{fmt.Sprintf("%s needs the repository address and the Secret's token (or a GitHub App's githubAppID, githubAppInstallationID and githubAppPrivateKey)", typ)}
	case typ == notifyv1.BitbucketProvider:
		return &secretError{"bitbucket needs the repository address and the Secret's token (<username>:<app-password>, or an access token)"}
	default:
		return &secretError{fmt.Sprintf("%s needs the repository address and the Secret's token", typ)}
	}
}

// commentKey keeps the comments of Providers apart on one pull request: the Provider's UID.
func commentKey(p *notifyv1.Provider) string {
	if p.UID != "" {
		return string(p.UID)
	}
	return p.Namespace + "/" + p.Name
}

func giteaSender(c senderConfig) (notify.Sender, error) {
	if err := needRepositoryAndToken(c); err != nil {
		return nil, err
	}
	return &notify.Gitea{Repository: c.Address, Token: c.Token, Client: c.Client, Text: c.Status}, nil
}

func bitbucketSender(c senderConfig) (notify.Sender, error) {
	if err := needRepositoryAndToken(c); err != nil {
		return nil, err
	}
	return &notify.Bitbucket{Repository: c.Address, Token: c.Token, Client: c.Client, Text: c.Status}, nil
}

// bitbucketServerSender takes the Secret's token, or a password with the Secret's username (or
// spec.username), as Flux does.
func bitbucketServerSender(c senderConfig) (notify.Sender, error) {
	username, password := string(c.Data["username"]), string(c.Data["password"])
	if username == "" {
		username = c.Provider.Spec.Username
	}
	if c.Address == "" || (c.Token == "" && (username == "" || password == "")) {
		return nil, &secretError{"bitbucketserver needs the repository address and the Secret's token, or its password with a username (the Secret's, or spec.username)"}
	}
	return &notify.BitbucketServer{Repository: c.Address, Token: c.Token, Username: username, Password: password,
		Client: c.Client, Text: c.Status}, nil
}

func azureDevOpsSender(c senderConfig) (notify.Sender, error) {
	if err := needRepositoryAndToken(c); err != nil {
		return nil, err
	}
	return &notify.AzureDevOps{Repository: c.Address, Token: c.Token, Bearer: c.Provider.Spec.ServiceAccountName != "", Client: c.Client, Text: c.Status}, nil
}

func githubCommentSender(c senderConfig) (notify.Sender, error) {
	if err := needRepositoryAndToken(c); err != nil {
		return nil, err
	}
	return &notify.GitHubPullRequestComment{Repository: c.Address, APIURL: c.APIURL, Token: c.Token, TokenSource: c.TokenSource,
		App: c.TokenSource != nil, Client: c.Client, Key: commentKey(c.Provider)}, nil
}

func gitlabCommentSender(c senderConfig) (notify.Sender, error) {
	if err := needRepositoryAndToken(c); err != nil {
		return nil, err
	}
	return &notify.GitLabMergeRequestComment{Repository: c.Address, Token: c.Token, Client: c.Client, Key: commentKey(c.Provider)}, nil
}

func giteaCommentSender(c senderConfig) (notify.Sender, error) {
	if err := needRepositoryAndToken(c); err != nil {
		return nil, err
	}
	return &notify.GiteaPullRequestComment{Repository: c.Address, Token: c.Token, Client: c.Client, Key: commentKey(c.Provider)}, nil
}

func githubDispatchSender(c senderConfig) (notify.Sender, error) {
	if err := needRepositoryAndToken(c); err != nil {
		return nil, err
	}
	return &notify.GitHubDispatch{Repository: c.Address, APIURL: c.APIURL, Token: c.Token, TokenSource: c.TokenSource, Client: c.Client}, nil
}
