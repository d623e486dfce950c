package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		address string
		ok      bool
	}{
		{"http://127.0.0.1:3128", true},
		{"https://proxy.example:443", true},
		{" http://proxy.example:3128/ ", true},
		{"socks5://127.0.0.1:1080", false},
		{"127.0.0.1:3128", false},
		{"http://", false},
		{"http://u:topsecret@127.0.0.1:3128", false},
		{"http://127.0.0.1:3128/path", false},
	} {
		p, err := Parse(tc.address, "u", "pw")
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) = %v, want ok = %v", tc.address, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrProxy) || strings.Contains(err.Error(), "topsecret") {
				t.Errorf("Parse(%q): %q does not wrap ErrProxy or quotes a password", tc.address, err)
			}
			continue
		}
		if p.URL.User != nil || p.FullURL().User.String() != "u:pw" {
			t.Errorf("Parse(%q): URL %v, full %v", tc.address, p.URL, p.FullURL())
		}
	}
}

func TestMatchNoProxy(t *testing.T) {
	for _, tc := range []struct {
		noProxy, target string
		want            bool
	}{
		{"", "127.0.0.1:80", false},
		{"*", "example.com", true},
		{"127.0.0.1", "127.0.0.1:5000", true},
		{"10.0.0.0/8", "10.1.2.3:443", true},
		{"10.0.0.0/8", "127.0.0.1:443", false},
		{"example.com", "git.example.com:443", true},
		{".example.com", "example.com", true},
		{"example.com", "notexample.com", false},
		{"example.com:8443", "example.com:443", false},
		{"example.com:8443", "example.com:8443", true},
		{" foo , 127.0.0.2", "127.0.0.2", true},
		{"::1", "[::1]:80", true},
	} {
		if got := matchNoProxy(tc.noProxy, tc.target); got != tc.want {
			t.Errorf("matchNoProxy(%q, %q) = %v, want %v", tc.noProxy, tc.target, got, tc.want)
		}
	}
}

func TestTransport_GoesThroughTheProxyAndExplainsARefusal(t *testing.T) {
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	plain, tlsSrv := httptest.NewServer(h), httptest.NewTLSServer(h)
	defer plain.Close()
	defer tlsSrv.Close()
	px := nettest.NewProxy(t, "user", "topsecret")
	base := tlsSrv.Client().Transport.(*http.Transport)
	for _, pw := range []string{"topsecret", "wrong-topsecret"} {
		p, err := Parse(px.URL.String(), "user", pw)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: p.Transport(base)}
		for _, target := range []string{plain.URL, tlsSrv.URL} {
			resp, err := c.Get(target)
			if pw == "topsecret" {
				if err != nil {
					t.Fatalf("%s: %v", target, err)
				}
				_ = resp.Body.Close()
				continue
			}
			if err == nil {
				_ = resp.Body.Close()
				t.Fatalf("%s with a wrong proxy password: %s", target, resp.Status)
			}
			if !errors.Is(err, ErrProxy) || !strings.Contains(err.Error(), px.Addr) || strings.Contains(err.Error(), "topsecret") {
				t.Errorf("%s: error %q must wrap ErrProxy, name %s and not quote the password", target, err, px.Addr)
			}
		}
	}
	if px.Served(plain.Listener.Addr().String()) != 1 || px.Served(tlsSrv.Listener.Addr().String()) != 1 || px.Refused() != 2 {
		t.Errorf("served %d/%d, refused %d", px.Served(plain.Listener.Addr().String()), px.Served(tlsSrv.Listener.Addr().String()), px.Refused())
	}

	// NO_PROXY of the environment wins for the target host.
	t.Setenv("NO_PROXY", "127.0.0.1")
	p, _ := Parse(px.URL.String(), "user", "wrong")
	resp, err := (&http.Client{Transport: p.Transport(base)}).Get(plain.URL)
	if err != nil {
		t.Fatalf("NO_PROXY target: %v", err)
	}
	_ = resp.Body.Close()
	if px.Refused() != 2 {
		t.Error("a NO_PROXY target went through the proxy")
	}
}

func TestTransport_AnUnreachableProxyIsNamed(t *testing.T) {
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there any more
	p, err := Parse("http://"+addr, "user", "topsecret")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: p.Transport(http.DefaultTransport.(*http.Transport))}
	for _, target := range []string{"http://127.0.0.1:1/index.yaml", "https://127.0.0.1:1/v2/"} {
		_, err := c.Get(target)
		if !errors.Is(err, ErrProxy) || !strings.Contains(err.Error(), "cannot reach proxy "+addr) || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%s: %v", target, err)
		}
	}
}
