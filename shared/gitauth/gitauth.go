// Package gitauth turns a Git repository's URL and the data of its credentials Secret into
// go-git's authentication: basic auth or a bearer token with an optional CA for HTTP(S), a
// private key with host keys that are always verified for SSH; with a provider, a GitHub App's
// installation token (githubapp.go) or an Azure workload identity's Entra ID token
// (provider.go). Every controller that reads or writes Git repositories reads the same Secret
// keys and shares the same token caches.
package gitauth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/plumb-dev/plumb/shared/proxy"
)

// Errors, to be told apart with errors.Is.
var (
	// ErrAuth: the credentials are missing, incomplete or unusable for the URL's scheme.
	ErrAuth = errors.New("authentication failed")
	// ErrInvalid: the URL cannot work (a scheme other than http, https or ssh).
	ErrInvalid = errors.New("invalid input")
)

// Remote is a repository URL with its credentials, as go-git's clone, fetch and list options
// take them.
type Remote struct {
	URL      string
	Auth     transport.AuthMethod
	CABundle []byte
	// Proxy, when set, carries the HTTP(S) connections to the remote (unless NO_PROXY of the
	// environment excludes its host).
	Proxy *proxy.Proxy
}

// NewRemote builds a Remote for the URL from the data of a credentials Secret (nil for none):
// `username`+`password` or `bearerToken` and `ca.crt` for HTTP(S); `identity`, `known_hosts` and
// an optional `password` (the key's passphrase) for SSH. Errors name the missing key, never a value.
func NewRemote(rawURL string, secret map[string][]byte) (Remote, error) {
	r := Remote{URL: rawURL}
	scheme, user := "ssh", "git"
	if u, err := url.Parse(rawURL); err == nil && u.Scheme != "" {
		scheme = u.Scheme
		if u.User != nil {
			user = u.User.Username()
		}
	} else if at := strings.Index(rawURL, "@"); at > 0 {
		user = rawURL[:at] // scp-like git@host:path
	}
	switch scheme {
	case "http", "https":
		if secret == nil {
			return r, nil
		}
		r.CABundle = secret["ca.crt"]
		switch {
		case len(secret["bearerToken"]) > 0:
			r.Auth = &githttp.TokenAuth{Token: string(secret["bearerToken"])}
		case len(secret["username"]) > 0 || len(secret["password"]) > 0:
			if len(secret["username"]) == 0 || len(secret["password"]) == 0 {
				return r, fmt.Errorf("%w: the Secret needs both `username` and `password` for basic auth", ErrAuth)
			}
			r.Auth = &githttp.BasicAuth{Username: string(secret["username"]), Password: string(secret["password"])}
		}
		return r, nil
	case "ssh":
		if secret == nil {
			return r, fmt.Errorf("%w: an ssh URL needs spec.secretRef with `identity` and `known_hosts`", ErrAuth)
		}
		if len(secret["identity"]) == 0 {
			return r, fmt.Errorf("%w: the Secret has no `identity` (SSH private key)", ErrAuth)
		}
		if len(secret["known_hosts"]) == 0 {
			return r, fmt.Errorf("%w: the Secret has no `known_hosts`; host keys are always verified", ErrAuth)
		}
		keys, err := gitssh.NewPublicKeys(user, secret["identity"], string(secret["password"]))
		if err != nil {
			return r, fmt.Errorf("%w: the Secret's `identity` is not a usable private key (wrong or missing `password`?)", ErrAuth)
		}
		cb, err := hostKeyCallback(secret["known_hosts"])
		if err != nil {
			return r, err
		}
		keys.HostKeyCallback = cb
		r.Auth = keys
		return r, nil
	default:
		return r, fmt.Errorf("%w: URL scheme %q is not supported; use http, https or ssh", ErrInvalid, scheme)
	}
}

// hostKeyCallback parses known_hosts content. The knownhosts package reads only files, so the
// content goes through a private temporary file that is removed at once.
func hostKeyCallback(content []byte) (func(string, net.Addr, ssh.PublicKey) error, error) {
	f, err := os.CreateTemp("", "known_hosts-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("%w: the Secret's `known_hosts` cannot be parsed: %v", ErrAuth, err)
	}
	return cb, nil
}
