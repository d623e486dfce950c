package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
)

func TestAddressPolicy_Check(t *testing.T) {
	apiServer := &AddressPolicy{APIServer: []netip.AddrPort{netip.MustParseAddrPort("10.96.0.1:443")}}
	loopbackAllowed := &AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		APIServer: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:6443")}}
	for _, tc := range []struct {
		name    string
		policy  *AddressPolicy
		addr    string
		refused string // what the refusal says, "" when allowed
	}{
		{"IPv4 loopback", nil, "127.0.0.1:80", "loopback"},
		{"all of 127/8", &AddressPolicy{}, "127.1.2.3:80", "loopback"},
		{"IPv6 loopback", nil, "[::1]:80", "loopback"},
		{"IPv4-mapped loopback", nil, "[::ffff:127.0.0.1]:80", "loopback"},
		{"metadata service", nil, "169.254.169.254:80", "link-local"},
		{"IPv6 link-local", nil, "[fe80::1]:80", "link-local"},
		{"IPv6 link-local with a zone", nil, "[fe80::1%eth0]:80", "link-local"},
		{"AWS IPv6 metadata", nil, "[fd00:ec2::254]:80", "metadata"},
		{"unspecified IPv4", nil, "0.0.0.0:80", "unspecified"},
		{"unspecified IPv6", nil, "[::]:80", "unspecified"},
		{"the API server", apiServer, "10.96.0.1:443", "API server"},
		{"another port of the API server's address", apiServer, "10.96.0.1:8080", ""},
		{"private 10/8 (in-cluster relays)", nil, "10.1.2.3:443", ""},
		{"private 192.168/16", nil, "192.168.1.10:443", ""},
		{"private 172.16/12", nil, "172.16.0.5:443", ""},
		{"unique local IPv6", nil, "[fd12::1]:443", ""},
		{"public", nil, "192.0.2.10:443", ""},
		{"allowed loopback", loopbackAllowed, "127.0.0.1:8080", ""},
		{"allow lifts the API server too", loopbackAllowed, "127.0.0.1:6443", ""},
		{"allow lifts only what it covers", loopbackAllowed, "169.254.169.254:80", "link-local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tc.policy.Check(netip.MustParseAddrPort(tc.addr))
			if tc.refused == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var re *AddressRefusedError
			g.Expect(errors.As(err, &re)).To(BeTrue())
			g.Expect(err.Error()).To(And(ContainSubstring(tc.refused), ContainSubstring(AllowFlag)))
		})
	}
}

func TestParseAllow(t *testing.T) {
	g := NewWithT(t)
	got, err := ParseAllow(" 127.0.0.0/8, ::1 ,10.0.0.7")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.7/32")}))
	got, err = ParseAllow("")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeEmpty())
	_, err = ParseAllow("127.0.0.0/33")
	g.Expect(err).To(HaveOccurred())
}

// resolver answers every name with the addresses given, one list per look-up (the last
// repeats), and counts the look-ups.
type resolver struct {
	mu      sync.Mutex
	answers [][]netip.Addr
	asked   int
}

func (r *resolver) lookup(_ context.Context, _ string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.answers[min(r.asked, len(r.answers)-1)]
	r.asked++
	return a, nil
}

var loopback = netip.MustParseAddr("127.0.0.1")

// hostURL is the URL of srv with its address replaced by a name.
func hostURL(srv *httptest.Server, name, path string) string {
	u, _ := url.Parse(srv.URL)
	return "http://" + name + ":" + u.Port() + path
}

// A name that resolves to loopback is refused when the connection is made, and the refusal is
// not retried: no request reaches the server, and the error holds no path or query.
func TestAddressPolicy_RefusesNamesAtConnect(t *testing.T) {
	g := NewWithT(t)
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	r := &resolver{answers: [][]netip.Addr{{loopback}}}
	p := &AddressPolicy{LookupIP: r.lookup}
	w := &Webhook{URL: hostURL(srv, "hooks.example.test", "/hook?token=abc"), Client: p.Client(nil, nil)}
	err := w.Send(context.Background(), sample)
	g.Expect(err).To(HaveOccurred())
	var re *RetryableError
	g.Expect(errors.As(err, &re)).To(BeFalse(), "a refusal is not retried")
	g.Expect(err.Error()).To(And(ContainSubstring("loopback"), ContainSubstring(AllowFlag), Not(ContainSubstring("token=abc"))))
	g.Expect(s.bodies).To(BeEmpty())

	// The same name, allowed, delivers: the check is on the address, not the name.
	p = &AddressPolicy{LookupIP: r.lookup, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	w.Client = p.Client(nil, nil)
	g.Expect(w.Send(context.Background(), sample)).To(Succeed())
	g.Expect(s.bodies).To(HaveLen(1))
}

// DNS rebinding: the name resolves to a public address when the Provider is checked and to
// loopback when the delivery connects; the connection is refused all the same.
func TestAddressPolicy_DNSRebinding(t *testing.T) {
	g := NewWithT(t)
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	r := &resolver{answers: [][]netip.Addr{{netip.MustParseAddr("192.0.2.10")}, {loopback}}}
	p := &AddressPolicy{LookupIP: r.lookup}
	address := hostURL(srv, "rebind.example.test", "/hook")
	g.Expect(p.CheckURL(context.Background(), address)).To(Succeed(), "the early check sees the public address")
	s2 := &Slack{WebhookURL: address, Client: p.Client(nil, nil)}
	err := s2.Send(context.Background(), sample)
	var ar *AddressRefusedError
	g.Expect(errors.As(err, &ar)).To(BeTrue(), "%v", err)
	g.Expect(ar.Addr).To(HavePrefix("127.0.0.1:"))
	g.Expect(r.asked).To(Equal(2), "resolved again at connect time")
	g.Expect(s.bodies).To(BeEmpty())
}

// proxy notes what it is asked for.
type proxy struct {
	mu    sync.Mutex
	asked []string
}

func (p *proxy) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, r.URL.String())
}

// Through a proxy, the proxy's address is checked at connect time, and the target's address
// before the request is handed to the proxy.
func TestAddressPolicy_Proxy(t *testing.T) {
	g := NewWithT(t)
	px := &proxy{}
	srv := httptest.NewServer(px)
	defer srv.Close()
	proxyURL, _ := url.Parse(srv.URL)

	// The proxy is on loopback: refused by the default policy.
	w := &Webhook{URL: "http://192.0.2.10/hook", Client: (&AddressPolicy{}).Client(proxyURL, nil)}
	err := w.Send(context.Background(), sample)
	var ar *AddressRefusedError
	g.Expect(errors.As(err, &ar)).To(BeTrue(), "%v", err)
	g.Expect(px.asked).To(BeEmpty())

	// The proxy is allowed, the target is the metadata service: refused before the proxy is asked.
	allowed := &AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	w = &Webhook{URL: "http://169.254.169.254/latest/meta-data", Client: allowed.Client(proxyURL, nil)}
	err = w.Send(context.Background(), sample)
	g.Expect(errors.As(err, &ar)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("link-local"))
	g.Expect(px.asked).To(BeEmpty())

	// An allowed proxy and target: the proxy gets the request.
	w = &Webhook{URL: "http://192.0.2.10/hook", Client: allowed.Client(proxyURL, nil)}
	g.Expect(w.Send(context.Background(), sample)).To(Succeed())
	g.Expect(px.asked).To(ConsistOf("http://192.0.2.10/hook"))
}

// A redirect within the host connects again through the policy: the name now resolving to the
// metadata service's address is refused.
func TestAddressPolicy_Redirect(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		// Closing the connection makes the redirect connect anew.
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	r := &resolver{answers: [][]netip.Addr{{loopback}, {netip.MustParseAddr("169.254.169.254")}}}
	p := &AddressPolicy{LookupIP: r.lookup, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	w := &Webhook{URL: hostURL(srv, "hooks.example.test", "/hook"), Client: p.Client(nil, nil)}
	err := w.Send(context.Background(), sample)
	var ar *AddressRefusedError
	g.Expect(errors.As(err, &ar)).To(BeTrue(), "%v", err)
	g.Expect(ar.Addr).To(HavePrefix("169.254.169.254:"))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(paths).To(Equal([]string{"/hook"}))
}

func TestAPIServerEndpoints(t *testing.T) {
	for server, want := range map[string]string{
		"https://10.96.0.1:443": "10.96.0.1:443",
		"https://10.96.0.1":     "10.96.0.1:443",
		"127.0.0.1:6443":        "127.0.0.1:6443",
		"http://127.0.0.1":      "127.0.0.1:80",
		"https://[::1]:6443":    "[::1]:6443",
	} {
		t.Run(server, func(t *testing.T) {
			g := NewWithT(t)
			got, err := APIServerEndpoints(context.Background(), server)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal([]netip.AddrPort{netip.MustParseAddrPort(want)}))
		})
	}
}
