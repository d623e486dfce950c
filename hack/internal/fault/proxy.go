// Package fault injects network faults with real mechanisms: a TCP proxy on loopback in front
// of a server (a Git server, a registry, kube-apiserver) that passes traffic through, or refuses
// connections, resets them, swallows them without an answer, or answers every HTTP request with
// 500.
package fault

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Mode is what the proxy does with connections.
type Mode int

const (
	// Pass forwards both ways.
	Pass Mode = iota
	// Down refuses connections: nothing listens on the port, as when the server's process is
	// gone. Open connections are reset.
	Down
	// Reset accepts connections and resets them at once. Open connections are reset.
	Reset
	// Hang accepts connections and never answers, as a wedged server or a network that drops
	// packets does; open connections stop carrying bytes both ways.
	Hang
	// HTTP500 answers every HTTP request on a new connection with 500 Internal Server Error.
	// Open connections are reset. (Plain HTTP only: behind TLS it is a reset.)
	HTTP500
)

func (m Mode) String() string {
	return [...]string{"pass", "down", "reset", "hang", "500"}[m]
}

// Proxy forwards 127.0.0.1:port to a target address, with a fault when asked.
type Proxy struct {
	// Addr is the proxy's host:port on 127.0.0.1.
	Addr   string
	target string

	mu     sync.Mutex
	mode   Mode
	ln     net.Listener
	conns  map[net.Conn]struct{}
	change *sync.Cond // signalled when mode changes
	closed bool
	wg     sync.WaitGroup
}

// Start starts a proxy to target (host:port), passing traffic through.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.change = sync.NewCond(&p.mu)
	p.serve(ln)
	return p, nil
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Set switches to mode m. Leaving Down listens on the same port again.
func (p *Proxy) Set(m Mode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || m == p.mode {
		return nil
	}
	old := p.mode
	p.mode = m
	p.change.Broadcast()
	if m != Hang && m != Pass || old == Hang {
		// The fault reaches open connections too; leaving Hang, what hung is cut so that
		// clients retry rather than wait on a connection that lost bytes.
		p.resetAllLocked()
	}
	if m == Down {
		err := p.ln.Close()
		p.ln = nil
		return err
	}
	if old == Down {
		ln, err := net.Listen("tcp", p.Addr)
		if err != nil {
			return err
		}
		p.serveLocked(ln)
	}
	return nil
}

// Close stops the proxy and resets every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	if p.ln != nil {
		_ = p.ln.Close()
	}
	p.resetAllLocked()
	p.change.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveLocked(ln)
}

func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.handle(c)
			}()
		}
	}()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *Proxy) resetAllLocked() {
	for c := range p.conns {
		reset(c)
		delete(p.conns, c)
	}
}

// reset closes c with an RST rather than a FIN, as a peer that lost the connection does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (p *Proxy) handle(down net.Conn) {
	if !p.track(down) {
		reset(down)
		return
	}
	defer p.untrack(down)
	switch p.Mode() {
	case Reset, Down:
		reset(down)
		return
	case Hang:
		// Read and drop whatever comes, never answer; a mode change or Close resets it.
		_, _ = io.Copy(io.Discard, down)
		return
	case HTTP500:
		answer500(down)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		reset(down)
		return
	}
	if !p.track(up) {
		reset(up)
		reset(down)
		return
	}
	defer p.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, down) }()
	go func() { defer wg.Done(); p.pipe(down, up) }()
	wg.Wait()
	_ = up.Close()
	_ = down.Close()
}

// pipe copies from src to dst; while the proxy hangs, what it read is held back.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitUnlessHanging() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			return
		}
	}
}

// waitUnlessHanging blocks while the proxy hangs; false when the proxy closed meanwhile.
func (p *Proxy) waitUnlessHanging() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == Hang && !p.closed {
		p.change.Wait()
	}
	return !p.closed
}

// answer500 answers the request on the connection with 500 and closes it.
func answer500(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 32<<10)); err != nil {
		return
	}
	const body = "injected fault: 500\n"
	if _, err := fmt.Fprintf(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
		return
	}
	// The rest of the request is drained, so that closing does not reset the connection
	// before the client read the answer.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.Copy(io.Discard, c)
}
