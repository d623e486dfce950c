// Package registry owns how a controller reaches an OCI registry that a user named: the
// credentials (a username and password, dockerconfigjson Secrets, the keys of a certSecretRef),
// the TLS setup and the transport, given as go-containerregistry remote options. Plain HTTP is
// refused unless the user asked for it.
package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/plumb-dev/plumb/shared/certs"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/proxy"
)

// ErrAuth: the credentials are unreadable (a dockerconfigjson that is not JSON, a CA that is not
// PEM). Callers use it as their own kind of authentication error, so that a registry refusing
// the credentials and a Secret that cannot be read map to the same reason.
var ErrAuth = errors.New("authentication failed")

// Credentials for a registry.
type Credentials struct {
	// Username and Password, when set, are used as they are (a HelmRepository's Secret).
	Username, Password string
	// DockerConfigs are the contents of kubernetes.io/dockerconfigjson Secrets, tried in order;
	// the first with an entry for the registry wins over Username and Password.
	DockerConfigs [][]byte
	// CA is a PEM bundle of the registry's CA; Cert and Key a client certificate.
	CA, Cert, Key []byte
	// Cloud, when set, holds short-lived credentials of a cloud provider (Cloud.Login); used
	// when neither a DockerConfigs entry nor Username and Password are there.
	Cloud authn.Authenticator
	// Insecure talks plain HTTP.
	Insecure bool
	// Proxy, when set, carries every request to the registry (unless NO_PROXY of the
	// environment excludes its host); nil keeps the environment's proxies.
	Proxy *proxy.Proxy
}

// NameOptions returns the options to parse a reference to the registry with: name.Insecure when
// Insecure is set, so that go-containerregistry uses plain HTTP for it.
func (c Credentials) NameOptions() []name.Option {
	if c.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// sharedTransport serves every registry without a TLS setting of its own, so that connections
// are reused across reconciles; deadlines are those of every transport.
var (
	sharedTransport atomic.Pointer[http.Transport]
	deadlines       atomic.Pointer[hostlimit.Deadlines]
)

func init() { SetDeadlines(hostlimit.DefaultDeadlines) }

// SetDeadlines bounds connecting and the wait for the first answer of every registry request of
// the process, inside the caller's timeout: a registry that accepts and never answers fails
// after d.ResponseHeader. Call it before the controllers start.
func SetDeadlines(d hostlimit.Deadlines) {
	deadlines.Store(&d)
	sharedTransport.Store(d.Transport(remote.DefaultTransport.(*http.Transport)))
}

// Options returns the remote options (transport and authenticator) for a repository of the
// registry with these credentials. Unreadable credentials are ErrAuth; the errors never quote
// them.
func Options(repo name.Repository, c Credentials) ([]remote.Option, error) {
	rt, err := c.transport()
	if err != nil {
		return nil, err
	}
	auth, err := c.authenticator(repo.RegistryStr())
	if err != nil {
		return nil, err
	}
	return []remote.Option{remote.WithTransport(rt), remote.WithAuth(auth)}, nil
}

// transport is the shared transport, or one of its own for a TLS setting, refusing plain HTTP
// unless Insecure.
func (c Credentials) transport() (http.RoundTripper, error) {
	tr := sharedTransport.Load()
	if len(c.CA) > 0 || len(c.Cert) > 0 || len(c.Key) > 0 {
		tr = deadlines.Load().Transport(remote.DefaultTransport.(*http.Transport))
		cfg, err := certs.ClientConfig(c.CA, c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAuth, err)
		}
		tr.TLSClientConfig = cfg
	}
	var rt http.RoundTripper = tr
	if c.Proxy != nil {
		// A transport of its own (a clone keeps the deadlines): the proxy is per object.
		rt = c.Proxy.Transport(tr)
	}
	if c.Insecure {
		return rt, nil
	}
	return httpsOnly{rt}, nil
}

// authenticator picks the credentials for the registry: the first DockerConfigs entry for it,
// else Username and Password, else the cloud's, else anonymous.
func (c Credentials) authenticator(registry string) (authn.Authenticator, error) {
	auth := authn.Anonymous
	if c.Cloud != nil {
		auth = c.Cloud
	}
	if c.Username != "" || c.Password != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password})
	}
	for _, dc := range c.DockerConfigs {
		a, found, err := fromDockerConfig(dc, registry)
		if err != nil {
			return nil, err
		}
		if found {
			return a, nil
		}
	}
	return auth, nil
}

// httpsOnly refuses plain HTTP: go-containerregistry falls back to it for loopback, private
// network and .local registries, which would send credentials in the clear. Plain HTTP takes
// insecure: true.
type httpsOnly struct{ next http.RoundTripper }

func (t httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return nil, fmt.Errorf("%s would be reached over plain HTTP; set insecure: true to allow it", r.URL.Host)
	}
	return t.next.RoundTrip(r)
}

// fromDockerConfig finds the registry's entry in a dockerconfigjson document.
func fromDockerConfig(data []byte, registry string) (authn.Authenticator, bool, error) {
	var doc struct {
		Auths map[string]struct {
			Username      string `json:"username"`
			Password      string `json:"password"`
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, false, fmt.Errorf("%w: .dockerconfigjson is not valid JSON", ErrAuth)
	}
	// Several keys can name one registry (ghcr.io, https://ghcr.io/v1/): the first in sorted
	// order wins, so that the choice does not change from one reconcile to the next.
	for _, host := range slices.Sorted(maps.Keys(doc.Auths)) {
		if hostOf(host) != registry {
			continue
		}
		e := doc.Auths[host]
		cfg := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, false, fmt.Errorf("%w: .dockerconfigjson: auth of %s is not base64", ErrAuth, registry)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, false, fmt.Errorf("%w: .dockerconfigjson: auth of %s is not user:password", ErrAuth, registry)
			}
			cfg.Username, cfg.Password = user, pass
		}
		return authn.FromConfig(cfg), true, nil
	}
	return nil, false, nil
}

// hostOf reduces a dockerconfig key (host, https://host/v1/, ...) to the host.
func hostOf(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	key, _, _ = strings.Cut(key, "/")
	if key == "docker.io" || key == "registry-1.docker.io" {
		return name.DefaultRegistry
	}
	return key
}
