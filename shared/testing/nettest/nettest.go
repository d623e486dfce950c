// Package nettest holds misbehaving network servers on loopback, for tests of how the
// controllers bear them, and the self-signed certificates loopback TLS servers serve.
package nettest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Hanging is a server that accepts connections and never answers, as a wedged Git server or
// registry does. Its clean-up closes every connection, so that whatever still waits on it fails
// at once.
type Hanging struct {
	// Addr is host:port on 127.0.0.1.
	Addr     string
	accepted atomic.Int64
}

// NewHanging starts a Hanging server for the test.
func NewHanging(t testing.TB) *Hanging {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Hanging{Addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return s
}

// Accepted counts the connections accepted so far.
func (s *Hanging) Accepted() int64 { return s.accepted.Load() }
