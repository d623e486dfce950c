package nettest

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is a forward HTTP proxy on loopback: it tunnels CONNECT requests (https targets) and
// forwards absolute-form requests (http targets), asks for basic auth when it has a username,
// and counts what it served per target host:port. It reaches loopback targets only.
type Proxy struct {
	// URL is http://127.0.0.1:port.
	URL *url.URL
	// Addr is host:port on 127.0.0.1.
	Addr string

	username, password string

	mu      sync.Mutex
	served  map[string]int
	refused int
}

// NewProxy starts a Proxy for the test; with a username it answers 407 unless the request
// carries these credentials.
func NewProxy(t testing.TB, username, password string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		URL:      &url.URL{Scheme: "http", Host: ln.Addr().String()},
		Addr:     ln.Addr().String(),
		username: username,
		password: password,
		served:   map[string]int{},
	}
	// The forwarding transport never uses a proxy itself.
	forward := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	var tunnels sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.authorized(r) {
			p.mu.Lock()
			p.refused++
			p.mu.Unlock()
			w.Header().Set("Proxy-Authenticate", `Basic realm="test proxy"`)
			http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
			return
		}
		if r.Method == http.MethodConnect {
			target := r.Host
			if !loopback(target) {
				http.Error(w, "the test proxy reaches loopback only", http.StatusForbidden)
				return
			}
			up, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			hj, ok := w.(http.Hijacker)
			if !ok {
				_ = up.Close()
				http.Error(w, "no hijacking", http.StatusInternalServerError)
				return
			}
			down, buf, err := hj.Hijack()
			if err != nil {
				_ = up.Close()
				return
			}
			p.count(target)
			mu.Lock()
			conns = append(conns, up, down)
			mu.Unlock()
			_, _ = down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
			tunnels.Add(2)
			go func() {
				defer tunnels.Done()
				_, _ = io.Copy(up, buf)
				if c, ok := up.(*net.TCPConn); ok {
					_ = c.CloseWrite()
				}
			}()
			go func() {
				defer tunnels.Done()
				_, _ = io.Copy(down, up)
				_ = down.Close()
			}()
			return
		}
		if !r.URL.IsAbs() || !loopback(r.URL.Host) {
			http.Error(w, "the test proxy forwards absolute-form requests to loopback only", http.StatusBadRequest)
			return
		}
		p.count(hostPort(r.URL))
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Del("Proxy-Authorization")
		out.Header.Del("Proxy-Connection")
		resp, err := forward.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
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
		tunnels.Wait()
		forward.CloseIdleConnections()
	})
	return p
}

func (p *Proxy) authorized(r *http.Request) bool {
	if p.username == "" {
		return true
	}
	h := r.Header.Get("Proxy-Authorization")
	enc, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return false
	}
	return string(raw) == p.username+":"+p.password
}

func (p *Proxy) count(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.served[target]++
}

// Served counts the tunnels (CONNECT) and forwarded requests (absolute-form) to the target
// host:port so far.
func (p *Proxy) Served(target string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served[target]
}

// Total counts everything served, to any target.
func (p *Proxy) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.served {
		n += c
	}
	return n
}

// Refused counts the requests answered 407.
func (p *Proxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
