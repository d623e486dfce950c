package git

import "github.com/plumb-dev/plumb/shared/gitauth"

// Remote is a repository URL with its credentials: shared/gitauth's, which reads them from a
// Secret.
type Remote = gitauth.Remote

// NewRemote builds a Remote for the URL from the data of a credentials Secret (nil for none), as
// gitauth.NewRemote does; its errors are ErrAuth or ErrInvalid.
func NewRemote(rawURL string, secret map[string][]byte) (Remote, error) {
	return gitauth.NewRemote(rawURL, secret)
}
