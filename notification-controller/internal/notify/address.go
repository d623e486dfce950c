package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AllowFlag is the controller flag that loosens the address policy; refusals name it.
const AllowFlag = "--provider-allow-cidr"

// denied are the ranges no delivery connects to unless an Allow prefix covers them: a Provider
// is written by whoever may create one in a namespace, and must not reach the controller's own
// host, the cloud's metadata service (link-local: 169.254.169.254, metadata.google.internal) or
// the node. Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) stay allowed: in-cluster
// chat relays and webhook receivers live there.
var denied = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local, where cloud metadata services answer"},
	{netip.MustParsePrefix("fe80::/10"), "link-local, where cloud metadata services answer"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata service"},
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
}

// AddressPolicy decides which addresses a Provider's deliveries may connect to. It is checked
// when a connection is made, on the IP address it is made to, so a name that resolves to one
// address when the Provider is checked and to another when it delivers (DNS rebinding) gains
// nothing; redirects and proxies connect through the same check. The zero value refuses the
// ranges above; a nil *AddressPolicy refuses the same.
type AddressPolicy struct {
	// Allow lifts every refusal for the addresses it covers (loopback test sinks, say).
	Allow []netip.Prefix
	// APIServer lists the cluster's API server endpoints (from the controller's kubeconfig,
	// resolved), refused as well.
	APIServer []netip.AddrPort
	// LookupIP resolves host names; nil uses the system's resolver. Tests set it.
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)

	once   sync.Once
	shared *http.Client
}

var defaultPolicy = &AddressPolicy{}

// AddressRefusedError says that the policy refused an address. It never holds a URL's path,
// query or credentials: only the address connected to.
type AddressRefusedError struct {
	Addr string
	Why  string
}

func (e *AddressRefusedError) Error() string {
	return fmt.Sprintf("address %s refused by the provider address policy (%s); %s on notification-controller allows it", e.Addr, e.Why, AllowFlag)
}

// Check returns an *AddressRefusedError when addr may not be connected to.
func (p *AddressPolicy) Check(addr netip.AddrPort) error {
	ip := addr.Addr().Unmap().WithZone("")
	if p != nil {
		for _, a := range p.Allow {
			if a.Contains(ip) {
				return nil
			}
		}
	}
	for _, d := range denied {
		if d.prefix.Contains(ip) {
			return &AddressRefusedError{Addr: addr.String(), Why: d.why}
		}
	}
	if p != nil {
		for _, a := range p.APIServer {
			if a.Addr().Unmap().WithZone("") == ip && a.Port() == addr.Port() {
				return &AddressRefusedError{Addr: addr.String(), Why: "the cluster's API server"}
			}
		}
	}
	return nil
}

// CheckURL resolves the host of rawURL and checks every address it has. It is the early check
// a Provider's Ready condition shows; the check that counts is the one at connect time. A
// name that does not resolve passes (the delivery will say why it failed).
func (p *AddressPolicy) CheckURL(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080"}[u.Scheme]
	}
	ips, err := p.resolve(ctx, u.Hostname())
	if err != nil {
		return nil
	}
	n, _ := strconv.ParseUint(port, 10, 16)
	for _, ip := range ips {
		if err := p.Check(netip.AddrPortFrom(ip, uint16(n))); err != nil {
			return err
		}
	}
	return nil
}

func (p *AddressPolicy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	if p != nil && p.LookupIP != nil {
		return p.LookupIP(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// DialContext resolves the address's host, checks each IP address and connects to the first
// allowed one that answers. The dialer's Control checks again on the very address of the
// socket, so no path around the resolver escapes the policy.
func (p *AddressPolicy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", port, err)
	}
	ips, err := p.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: p.control}
	var errs []error
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip, uint16(n))
		if err := p.Check(ap); err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := d.DialContext(ctx, network, ap.String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	return nil, errors.Join(errs...)
}

func (p *AddressPolicy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	return p.Check(ap)
}

// proxied wraps a transport's proxy choice: the proxy's own address is checked when it is
// connected to; the target is checked here as this controller resolves it (the proxy may
// resolve it otherwise: what a proxy may reach is the proxy's own configuration).
func (p *AddressPolicy) proxied(choose func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(r *http.Request) (*url.URL, error) {
		u, err := choose(r)
		if err != nil || u == nil {
			return u, err
		}
		if err := p.CheckURL(r.Context(), r.URL.String()); err != nil {
			return nil, err
		}
		return u, nil
	}
}

// Client returns an HTTP client whose connections follow the policy, through proxy when set
// (else the environment's HTTPS_PROXY, HTTP_PROXY and NO_PROXY), with tlsConfig when set (else
// the system's certificate authorities). Redirects stay within a host and scheme. Clients
// without a proxy or TLS setting share one transport.
func (p *AddressPolicy) Client(proxy *url.URL, tlsConfig *tls.Config) *http.Client {
	if p == nil {
		p = defaultPolicy
	}
	if proxy == nil && tlsConfig == nil {
		p.once.Do(func() { p.shared = p.newClient(nil, nil) })
		return p.shared
	}
	return p.newClient(proxy, tlsConfig)
}

func (p *AddressPolicy) newClient(proxy *url.URL, tlsConfig *tls.Config) *http.Client {
	choose := http.ProxyFromEnvironment
	if proxy != nil {
		choose = http.ProxyURL(proxy)
	}
	return p.ClientVia(choose, tlsConfig)
}

// ClientVia is Client with a proxy function (shared/proxy's, which honours NO_PROXY, say): the
// address of each request is checked before the proxy is chosen, and the proxy's own address
// when it is connected to.
func (p *AddressPolicy) ClientVia(choose func(*http.Request) (*url.URL, error), tlsConfig *tls.Config) *http.Client {
	if p == nil {
		p = defaultPolicy
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = p.DialContext
	tr.Proxy = p.proxied(choose)
	if tlsConfig != nil {
		tr.TLSClientConfig = tlsConfig
	}
	return &http.Client{Transport: tr, CheckRedirect: sameHost}
}

// APIServerEndpoints resolves the host of a kubeconfig's server (https://10.96.0.1:443,
// https://api.example.com, 127.0.0.1:6443) to the endpoints an AddressPolicy refuses.
func APIServerEndpoints(ctx context.Context, server string) ([]netip.AddrPort, error) {
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	u, err := url.Parse(server)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("API server address %q has no host", server)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80"}[u.Scheme]
		if port == "" {
			port = "443"
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("API server port %q: %w", port, err)
	}
	ips, err := (*AddressPolicy)(nil).resolve(ctx, u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("resolving the API server's host: %w", err)
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(n)))
	}
	return out, nil
}

// ParseAllow reads a comma-separated list of CIDR prefixes and single IP addresses.
func ParseAllow(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if ip, err := netip.ParseAddr(f); err == nil {
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an IP address", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// refused reports whether err is, or wraps, a refusal of the policy.
func refused(err error) bool {
	var re *AddressRefusedError
	return errors.As(err, &re)
}
