package fault

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProxyModes(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "from the backend")
	}))
	defer backend.Close()
	p, err := Start(strings.TrimPrefix(backend.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	get := func(timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+"/", nil)
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.Status + " " + string(body), err
	}
	expect := func(mode Mode, check func(string, error) bool) {
		t.Helper()
		if err := p.Set(mode); err != nil {
			t.Fatal(err)
		}
		got, err := get(500 * time.Millisecond)
		if !check(got, err) {
			t.Errorf("%s: %q, %v", mode, got, err)
		}
	}
	ok := func(got string, err error) bool { return err == nil && got == "200 OK from the backend" }
	expect(Pass, ok)
	expect(Down, func(_ string, err error) bool { return errors.Is(err, syscall.ECONNREFUSED) })
	expect(Pass, ok)
	expect(Reset, func(_ string, err error) bool {
		return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	})
	expect(Hang, func(_ string, err error) bool { return errors.Is(err, context.DeadlineExceeded) })
	expect(HTTP500, func(got string, err error) bool {
		return err == nil && got == "500 Internal Server Error injected fault: 500\n"
	})
	expect(Pass, ok)
}

// A connection open when the proxy starts to hang carries no more bytes; when it passes again,
// that connection is cut, and a new one works.
func TestProxyHangsOpenConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }() // echo
		}
	}()
	p, err := Start(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		_, err := io.ReadFull(c, buf)
		return err
	}
	if err := echo(c); err != nil {
		t.Fatalf("before the fault: %v", err)
	}
	_ = p.Set(Hang)
	if err := echo(c); !errors.Is(err, syscall.ETIMEDOUT) && !isTimeout(err) {
		t.Fatalf("while hanging: %v, want a timeout", err)
	}
	_ = p.Set(Pass)
	if err := echo(c); err == nil {
		t.Fatal("the connection that hung still works")
	}
	c2, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := echo(c2); err != nil {
		t.Fatalf("a new connection after the fault: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
