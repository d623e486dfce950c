// Package proxy owns the HTTP(S) proxy an object names with proxySecretRef: reading its Secret,
// the proxy function for transports (honouring NO_PROXY of the controller's environment) and
// the errors, which name the proxy host and never its credentials.
package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrProxy: the proxy Secret is missing or unreadable, its address is not a proxy URL, or the
// proxy refused the connection or its credentials.
var ErrProxy = errors.New("proxy failed")

// Secret keys of a proxySecretRef.
const (
	AddressKey  = "address"
	UsernameKey = "username"
	PasswordKey = "password"
)

// Proxy is a proxy with its optional basic-auth credentials.
type Proxy struct {
	// URL is http://host:port or https://host:port, without credentials.
	URL                *url.URL
	Username, Password string
}

// Parse checks an address (http:// or https://, a host, no path) and keeps the credentials.
// Its errors wrap ErrProxy and never quote the credentials.
func Parse(address, username, password string) (*Proxy, error) {
	u, err := url.Parse(strings.TrimSpace(address))
	if err != nil {
		return nil, fmt.Errorf("%w: address is not a URL", ErrProxy)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: address %q must start with http:// or https://", ErrProxy, redacted(u))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: address %q has no host", ErrProxy, redacted(u))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: address %q must not hold credentials; use the username and password keys", ErrProxy, redacted(u))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: address %q must be scheme://host:port only", ErrProxy, redacted(u))
	}
	return &Proxy{URL: &url.URL{Scheme: u.Scheme, Host: u.Host}, Username: username, Password: password}, nil
}

func redacted(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// FromSecret reads the proxy Secret name in namespace; an empty name is no proxy (nil, nil).
// Errors wrap ErrProxy and name the Secret, never a value.
func FromSecret(ctx context.Context, r client.Reader, namespace, name string) (*Proxy, error) {
	if name == "" {
		return nil, nil
	}
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: namespace, Name: name}
	if err := r.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: proxy Secret %s not found", ErrProxy, key)
		}
		return nil, fmt.Errorf("%w: proxy Secret %s: %v", ErrProxy, key, err)
	}
	addr, ok := s.Data[AddressKey]
	if !ok || len(addr) == 0 {
		return nil, fmt.Errorf("%w: proxy Secret %s has no %s key", ErrProxy, key, AddressKey)
	}
	p, err := Parse(string(addr), string(s.Data[UsernameKey]), string(s.Data[PasswordKey]))
	if err != nil {
		return nil, fmt.Errorf("proxy Secret %s: %w", key, err)
	}
	return p, nil
}

// Host is the proxy's host:port as errors name it.
func (p *Proxy) Host() string { return p.URL.Host }

// FullURL is the URL with the credentials, for transports; never log it.
func (p *Proxy) FullURL() *url.URL {
	u := *p.URL
	switch {
	case p.Username != "" || p.Password != "":
		u.User = url.UserPassword(p.Username, p.Password)
	}
	return &u
}

// Key identifies the proxy and its credentials for caches shared between objects, without
// holding the password.
func (p *Proxy) Key() string {
	if p == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(p.Username + "\x00" + p.Password))
	return p.URL.String() + "#" + hex.EncodeToString(sum[:8])
}

// Options are go-git's proxy options for a remote URL: empty without a proxy or when NO_PROXY
// excludes the URL's host.
func (p *Proxy) Options(rawURL string) transport.ProxyOptions {
	if p == nil {
		return transport.ProxyOptions{}
	}
	if u, err := url.Parse(rawURL); err == nil && Bypass(u.Host) {
		return transport.ProxyOptions{}
	}
	return transport.ProxyOptions{URL: p.URL.String(), Username: p.Username, Password: p.Password}
}

// Bypass tells whether the target host (host or host:port) is excluded by NO_PROXY (or
// no_proxy) of the controller's environment.
func Bypass(target string) bool {
	noProxy := os.Getenv("NO_PROXY")
	if noProxy == "" {
		noProxy = os.Getenv("no_proxy")
	}
	return matchNoProxy(noProxy, target)
}

// matchNoProxy follows the usual NO_PROXY forms: "*", IP addresses, CIDR ranges, domain names
// (with or without a leading dot, matching the domain and its subdomains), each with an
// optional :port.
func matchNoProxy(noProxy, target string) bool {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		host, port = target, ""
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	ip := net.ParseIP(host)
	for _, e := range strings.Split(noProxy, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if e == "*" {
			return true
		}
		if _, cidr, err := net.ParseCIDR(e); err == nil {
			if ip != nil && cidr.Contains(ip) {
				return true
			}
			continue
		}
		eHost, ePort := e, ""
		if h, p, err := net.SplitHostPort(e); err == nil {
			eHost, ePort = h, p
		}
		eHost = strings.Trim(eHost, "[]")
		if ePort != "" && ePort != port {
			continue
		}
		if eIP := net.ParseIP(eHost); eIP != nil {
			if ip != nil && eIP.Equal(ip) {
				return true
			}
			continue
		}
		eHost = strings.TrimPrefix(strings.TrimPrefix(eHost, "*"), ".")
		if host == eHost || strings.HasSuffix(host, "."+eHost) {
			return true
		}
	}
	return false
}

// Func is the proxy function for an http.Transport: every request goes through the proxy
// unless NO_PROXY excludes its host.
func (p *Proxy) Func() func(*http.Request) (*url.URL, error) {
	full := p.FullURL()
	return func(r *http.Request) (*url.URL, error) {
		if Bypass(r.URL.Host) {
			return nil, nil
		}
		return full, nil
	}
}

// Transport returns a clone of base going through the proxy, wrapped so that a proxy refusing
// the credentials (407) is an error wrapping ErrProxy that names the proxy host.
func (p *Proxy) Transport(base *http.Transport) http.RoundTripper {
	tr := base.Clone()
	tr.Proxy = p.Func()
	return Explained{Next: tr, Proxy: p}
}

// Explained makes the proxy's refusals errors naming the proxy host: a 407 answer to an
// absolute-form request, and a CONNECT that the proxy answered with an error.
type Explained struct {
	Next  http.RoundTripper
	Proxy *Proxy
}

func (t Explained) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.Next.RoundTrip(r)
	if err != nil {
		return nil, t.Proxy.Explain(err)
	}
	if resp.StatusCode == http.StatusProxyAuthRequired {
		_ = resp.Body.Close()
		return nil, t.Proxy.Explain(errors.New(resp.Status))
	}
	return resp, nil
}

// Explain turns an error of an operation through the proxy into one wrapping ErrProxy and
// naming the proxy host when the proxy caused it; other errors are returned as they are.
func (p *Proxy) Explain(err error) error {
	if err == nil || p == nil || errors.Is(err, ErrProxy) {
		return err
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "status code: 407"), strings.Contains(msg, "Proxy Authentication Required"):
		return fmt.Errorf("%w: proxy %s refused the credentials (407 Proxy Authentication Required)", ErrProxy, p.Host())
	case strings.Contains(msg, "proxyconnect"):
		return fmt.Errorf("%w: cannot reach proxy %s: %s", ErrProxy, p.Host(), scrub(msg, p))
	}
	return err
}

// scrub removes the proxy credentials from a message, should a library have quoted the URL.
func scrub(msg string, p *Proxy) string {
	if p.Password != "" {
		msg = strings.ReplaceAll(msg, p.Password, "***")
		msg = strings.ReplaceAll(msg, url.QueryEscape(p.Password), "***")
	}
	return msg
}
