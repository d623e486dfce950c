// Package hostlimit keeps a remote that hangs from starving the reconciles of healthy ones: it
// bounds the operations in flight per remote host (a Limiter), and gives HTTP and SSH clients
// short deadlines to connect and to see the first byte of an answer (Deadlines), well inside an
// object's spec.timeout. A server that accepts connections and never answers then costs one of
// its own slots for a response-header timeout, not a worker for a full spec.timeout.
package hostlimit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of the flags.
const (
	DefaultMaxPerHost     = 2
	DefaultDial           = 10 * time.Second
	DefaultTLSHandshake   = 10 * time.Second
	DefaultResponseHeader = 30 * time.Second
	DefaultBusyWait       = time.Second
	DefaultBusyRetry      = 5 * time.Second
)

// ErrBusy: every slot of the host is taken. Errors of this kind are *BusyError.
var ErrBusy = errors.New("host busy")

// BusyError says which host is busy and how many operations hold it.
type BusyError struct {
	Host     string
	InFlight int
}

func (e *BusyError) Error() string {
	ops := "operations"
	if e.InFlight == 1 {
		ops = "operation"
	}
	return fmt.Sprintf("host %s is busy: %d %s in flight", e.Host, e.InFlight, ops)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Limiter bounds the operations in flight per host. The zero value and nil allow everything.
type Limiter struct {
	max  int
	wait time.Duration

	mu    sync.Mutex
	hosts map[string]*host
}

type host struct {
	inFlight int
	// freed is closed and replaced whenever a slot is released, waking every waiter.
	freed chan struct{}
}

// New returns a Limiter of max operations per host (max < 1: no bound). A busy host is waited
// for at most wait (and never past the caller's context) before Acquire gives up: 0 fails at once.
func New(max int, wait time.Duration) *Limiter {
	return &Limiter{max: max, wait: wait, hosts: map[string]*host{}}
}

// BusyWait is how long Acquire waits for a busy host (0 for a nil Limiter).
func (l *Limiter) BusyWait() time.Duration {
	if l == nil {
		return 0
	}
	return l.wait
}

// Acquire takes a slot of the host and returns the function that gives it back (call it once).
// When the host's slots stay taken for the Limiter's wait, or ctx ends first, the error is a
// *BusyError (or ctx's error if ctx ended before the wait began).
func (l *Limiter) Acquire(ctx context.Context, hostKey string) (func(), error) {
	if l == nil || l.max < 1 {
		return func() {}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var timer <-chan time.Time
	if l.wait > 0 {
		t := time.NewTimer(l.wait)
		defer t.Stop()
		timer = t.C
	}
	for {
		l.mu.Lock()
		h := l.hosts[hostKey]
		if h == nil {
			h = &host{freed: make(chan struct{})}
			l.hosts[hostKey] = h
		}
		if h.inFlight < l.max {
			h.inFlight++
			l.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { l.release(hostKey) }) }, nil
		}
		freed, n := h.freed, h.inFlight
		l.mu.Unlock()
		if timer == nil {
			return nil, &BusyError{Host: hostKey, InFlight: n}
		}
		select {
		case <-freed:
		case <-timer:
			return nil, &BusyError{Host: hostKey, InFlight: n}
		case <-ctx.Done():
			return nil, &BusyError{Host: hostKey, InFlight: n}
		}
	}
}

func (l *Limiter) release(hostKey string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hosts[hostKey]
	h.inFlight--
	close(h.freed)
	h.freed = make(chan struct{})
	if h.inFlight == 0 {
		delete(l.hosts, hostKey) // no waiter can hold h: a waiter re-reads the map after waking
	}
}

// InFlight returns the operations holding slots of the host.
func (l *Limiter) InFlight(hostKey string) int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.hosts[hostKey]; h != nil {
		return h.inFlight
	}
	return 0
}

// Key names the host of a remote address, lower case with its port, so that two services on
// one machine (two ports) are bounded apart and a default port is spelled one way. It reads
// URLs (https://host/path, ssh://user@host:22/path, oci://host/repo), scp-like Git addresses
// (user@host:path) and registry references (host[:port]/repo). Anything else is its own key.
func Key(remote string) string {
	hostport, scheme := "", ""
	if u, err := url.Parse(remote); err == nil && strings.Contains(remote, "://") {
		hostport, scheme = u.Host, u.Scheme
	} else if at := strings.Index(remote, "@"); at >= 0 && strings.Contains(remote[at:], ":") {
		hostport, _, _ = strings.Cut(remote[at+1:], ":") // user@host:path
		scheme = "ssh"
	} else {
		hostport, _, _ = strings.Cut(remote, "/")
	}
	if hostport == "" {
		return remote
	}
	hostport = strings.ToLower(hostport)
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	port := map[string]string{"http": "80", "https": "443", "ssh": "22", "git": "9418"}[scheme]
	if port == "" {
		port = "443" // registries and oci:// are HTTPS unless told otherwise
	}
	return net.JoinHostPort(strings.Trim(hostport, "[]"), port)
}

// Deadlines bound the first steps of a request, inside the operation's own timeout.
type Deadlines struct {
	// Dial bounds opening a TCP connection.
	Dial time.Duration
	// TLSHandshake bounds the TLS handshake.
	TLSHandshake time.Duration
	// ResponseHeader bounds the wait for an answer's headers once the request is sent: a
	// server that accepts and never answers fails after it.
	ResponseHeader time.Duration
}

// DefaultDeadlines are the flags' defaults.
var DefaultDeadlines = Deadlines{Dial: DefaultDial, TLSHandshake: DefaultTLSHandshake, ResponseHeader: DefaultResponseHeader}

// Transport returns a clone of base (http.DefaultTransport when nil) with the deadlines; a zero
// deadline keeps base's.
func (d Deadlines) Transport(base *http.Transport) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	tr := base.Clone()
	if d.Dial > 0 {
		tr.DialContext = (&net.Dialer{Timeout: d.Dial, KeepAlive: 30 * time.Second}).DialContext
	}
	if d.TLSHandshake > 0 {
		tr.TLSHandshakeTimeout = d.TLSHandshake
	}
	if d.ResponseHeader > 0 {
		tr.ResponseHeaderTimeout = d.ResponseHeader
	}
	return tr
}

// Options are the flags of a controller that reaches remote hosts.
type Options struct {
	MaxPerHost int
	// BusyWait is how long a reconcile waits for a slot of a busy host before it gives up: long
	// enough for the short operations of a healthy host, short against a hung one.
	BusyWait time.Duration
	// BusyRetry is how soon a reconcile that gave up on a busy host is tried again.
	BusyRetry time.Duration
	Deadlines
}

// Bind registers the flags on fs.
func (o *Options) Bind(fs *flag.FlagSet) {
	fs.IntVar(&o.MaxPerHost, "max-per-host", DefaultMaxPerHost, "Operations on one remote host (host:port) in flight at once; 0 for no bound. A reconcile that finds its host busy for --host-busy-wait gives its worker back: it is marked Ready=False, HostBusy and tried again after --host-busy-retry.")
	fs.DurationVar(&o.BusyWait, "host-busy-wait", DefaultBusyWait, "How long a reconcile waits for a slot of a busy host before it gives up (0: not at all).")
	fs.DurationVar(&o.BusyRetry, "host-busy-retry", DefaultBusyRetry, "How soon a reconcile that found its remote host busy is tried again (with jitter).")
	fs.DurationVar(&o.Dial, "dial-timeout", DefaultDial, "Deadline to open a connection to a remote host (Git, OCI, Helm, registries).")
	fs.DurationVar(&o.TLSHandshake, "tls-handshake-timeout", DefaultTLSHandshake, "Deadline of the TLS handshake with a remote host.")
	fs.DurationVar(&o.ResponseHeader, "response-header-timeout", DefaultResponseHeader, "Deadline for the first answer (response headers) of a remote HTTP(S) host once a request is sent.")
}

// Limiter returns the Limiter the flags ask for. A reconcile waits at most BusyWait for a busy
// host, then gives its worker back and comes again after BusyRetry, so that workers go to
// healthy hosts.
func (o Options) Limiter() *Limiter { return New(o.MaxPerHost, o.BusyWait) }
