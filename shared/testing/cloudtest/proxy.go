// Package cloudtest serves, on loopback, what the cloud SDKs really call to obtain registry
// credentials from a workload identity: AWS STS and ECR (SigV4 checked), the GCP metadata
// server, an Azure managed-identity endpoint and ACR's token exchange; and a proxy that takes
// a cloud registry's host name (123456789012.dkr.ecr.us-east-1.amazonaws.com) to a loopback
// registry, since such names cannot resolve to loopback otherwise.
package cloudtest

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Proxy is a forward HTTP proxy on loopback that sends the hosts it was told of to loopback
// addresses: CONNECT host:port is tunnelled to the mapped address, and absolute-form requests
// for http://host/... are forwarded to it. Loopback targets are reached as they are; any other
// is refused, so that nothing leaves the machine.
type Proxy struct {
	// URL is http://127.0.0.1:port.
	URL *url.URL

	mu     sync.Mutex
	routes map[string]string
	served map[string]int
}

// NewProxy starts a Proxy for the test.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{URL: &url.URL{Scheme: "http", Host: ln.Addr().String()}, routes: map[string]string{}, served: map[string]int{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	// The forwarding transport never uses a proxy itself.
	forward := &http.Transport{Proxy: nil}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			addr, ok := p.route(r.Host)
			if !ok {
				http.Error(w, "the test proxy reaches loopback and the hosts it was given only", http.StatusForbidden)
				return
			}
			up, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			down, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				_ = up.Close()
				return
			}
			mu.Lock()
			conns = append(conns, up, down)
			mu.Unlock()
			_, _ = down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, buf); _ = up.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); _, _ = io.Copy(down, up); _ = down.Close() }()
			return
		}
		hostport := r.URL.Host
		if r.URL.Port() == "" {
			hostport = net.JoinHostPort(r.URL.Hostname(), "80")
		}
		addr, ok := p.route(hostport)
		if !r.URL.IsAbs() || !ok {
			http.Error(w, "the test proxy forwards to loopback and the hosts it was given only", http.StatusForbidden)
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Host = addr
		out.Header.Del("Proxy-Connection")
		resp, err := forward.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
		forward.CloseIdleConnections()
	})
	return p
}

// Route sends host:port (as a client names it) to addr, a loopback host:port.
func (p *Proxy) Route(hostport, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes[hostport] = addr
}

// Served counts the tunnels and forwarded requests for host:port (as the client named it).
func (p *Proxy) Served(hostport string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served[hostport]
}

func (p *Proxy) route(hostport string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if addr, ok := p.routes[hostport]; ok {
		p.served[hostport]++
		return addr, true
	}
	host, _, err := net.SplitHostPort(hostport)
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
		p.served[hostport]++
		return hostport, true
	}
	return "", false
}
