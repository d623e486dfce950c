package nettest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestHangingAcceptsAndNeverAnswers(t *testing.T) {
	s := NewHanging(t)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Fatalf("the server answered: %d bytes, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Accepted() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d connections, want 1", s.Accepted())
		}
		time.Sleep(time.Millisecond) // a poll with a deadline
	}
}

func TestProxy_TunnelsForwardsAndAsksForCredentials(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer backend.Close()
	tlsBackend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer tlsBackend.Close()
	p := NewProxy(t, "user", "secret")
	get := func(target string, proxy *url.URL) (int, error) {
		tr := tlsBackend.Client().Transport.(*http.Transport).Clone()
		tr.Proxy = http.ProxyURL(proxy)
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(target)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.ReadAll(resp.Body)
		return resp.StatusCode, nil
	}
	good := *p.URL
	good.User = url.UserPassword("user", "secret")
	for _, target := range []string{backend.URL, tlsBackend.URL} {
		if code, err := get(target, &good); err != nil || code != 200 {
			t.Fatalf("%s through the proxy: %d, %v", target, code, err)
		}
	}
	if p.Served(backend.Listener.Addr().String()) != 1 || p.Served(tlsBackend.Listener.Addr().String()) != 1 {
		t.Fatalf("served: %v", p.served)
	}
	bad := *p.URL
	bad.User = url.UserPassword("user", "wrong")
	if code, err := get(backend.URL, &bad); err != nil || code != http.StatusProxyAuthRequired {
		t.Fatalf("http with a wrong password: %d, %v", code, err)
	}
	if _, err := get(tlsBackend.URL, &bad); err == nil {
		t.Fatal("CONNECT with a wrong password succeeded")
	}
	if p.Refused() != 2 || p.Total() != 2 {
		t.Fatalf("refused %d, total %d", p.Refused(), p.Total())
	}
}
