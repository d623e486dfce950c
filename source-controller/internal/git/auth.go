package git

import (
	"context"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/plumb-dev/plumb/shared/gitauth"
)

// Remote is a repository URL with its credentials: shared/gitauth's, which reads them from a
// Secret.
type Remote = gitauth.Remote

// NewRemote builds a Remote for the URL from the data of a credentials Secret (nil for none), as
// gitauth.NewRemote does, with SetDeadlines' dial deadline on SSH keys; its errors are ErrAuth
// or ErrInvalid.
func NewRemote(rawURL string, secret map[string][]byte) (Remote, error) {
	r, err := gitauth.NewRemote(rawURL, secret)
	if k, ok := r.Auth.(*gitssh.PublicKeys); ok {
		r.Auth = sshDialTimeout{k}
	}
	return r, err
}

// ProviderRemote builds a Remote from the credentials' source, as gitauth.ProviderRemote does
// (generic, github, azure), with NewRemote's SSH dial deadline.
func ProviderRemote(ctx context.Context, rawURL string, src gitauth.Source) (Remote, error) {
	r, err := gitauth.ProviderRemote(ctx, rawURL, src)
	if k, ok := r.Auth.(*gitssh.PublicKeys); ok {
		r.Auth = sshDialTimeout{k}
	}
	return r, err
}
