package hostlimit

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://Git.Example.com/org/repo.git", "git.example.com:443"},
		{"https://git.example.com:8443/org/repo.git", "git.example.com:8443"},
		{"http://127.0.0.1:3000/repo.git", "127.0.0.1:3000"},
		{"http://127.0.0.1/repo.git", "127.0.0.1:80"},
		{"https://user:secret@git.example.com/repo.git", "git.example.com:443"},
		{"ssh://git@git.example.com/org/repo.git", "git.example.com:22"},
		{"ssh://git@git.example.com:2222/org/repo.git", "git.example.com:2222"},
		{"git@github.com:org/repo.git", "github.com:22"},
		{"oci://ghcr.io/org/manifests", "ghcr.io:443"},
		{"ghcr.io/org/app", "ghcr.io:443"},
		{"127.0.0.1:5000/app", "127.0.0.1:5000"},
		{"https://[::1]:8443/x", "[::1]:8443"},
		{"https://[::1]/x", "[::1]:443"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := Key(tc.in); got != tc.want {
				t.Errorf("Key(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLimiter_BoundsEachHostApart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		max        int
		hosts      int
		perHost    int
		wantPeakLE int // 0: unbounded, the peak is everything at once
	}{
		{name: "two per host", max: 2, hosts: 3, perHost: 8, wantPeakLE: 2},
		{name: "one per host", max: 1, hosts: 2, perHost: 5, wantPeakLE: 1},
		{name: "no bound", max: 0, hosts: 2, perHost: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A long wait: every operation gets its turn, the bound shows in the peak.
			l := New(tc.max, time.Minute)
			peaks := make([]atomic.Int64, tc.hosts)
			cur := make([]atomic.Int64, tc.hosts)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for h := range tc.hosts {
				for range tc.perHost {
					wg.Go(func() {
						<-start
						release, err := l.Acquire(context.Background(), Key("https://host"+string(rune('a'+h))+".example"))
						if err != nil {
							t.Error(err)
							return
						}
						n := cur[h].Add(1)
						for p := peaks[h].Load(); n > p && !peaks[h].CompareAndSwap(p, n); p = peaks[h].Load() {
						}
						for range 100 { // hold the slot while others contend
							runtime.Gosched()
						}
						cur[h].Add(-1)
						release()
						release() // a second call is harmless
					})
				}
			}
			close(start)
			wg.Wait()
			for h := range tc.hosts {
				p := peaks[h].Load()
				if tc.wantPeakLE > 0 && p > int64(tc.wantPeakLE) {
					t.Errorf("host %d: %d in flight at once, want at most %d", h, p, tc.wantPeakLE)
				}
				if p < 1 {
					t.Errorf("host %d: nothing ran", h)
				}
			}
			if n := len(l.hosts); n != 0 {
				t.Errorf("%d hosts left in the map after every release", n)
			}
		})
	}
}

func TestLimiter_BusyFailsFastAndNamesTheHost(t *testing.T) {
	l := New(2, 0)
	var releases []func()
	for range 2 {
		r, err := l.Acquire(context.Background(), "h:443")
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	start := time.Now()
	_, err := l.Acquire(context.Background(), "h:443")
	if !errors.Is(err, ErrBusy) || err.Error() != "host h:443 is busy: 2 operations in flight" {
		t.Fatalf("got %v, want host h:443 is busy: 2 operations in flight", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a busy host took %s to refuse", d)
	}
	// Another host is not affected.
	other, err := l.Acquire(context.Background(), "other:443")
	if err != nil {
		t.Fatal(err)
	}
	other()
	releases[0]()
	r, err := l.Acquire(context.Background(), "h:443")
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	r()
	releases[1]()
	if n := l.InFlight("h:443"); n != 0 {
		t.Errorf("InFlight = %d after every release", n)
	}
}

func TestLimiter_WaitIsBoundedByWaitAndContext(t *testing.T) {
	l := New(1, 50*time.Millisecond)
	release, err := l.Acquire(context.Background(), "h:443")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	start := time.Now()
	if _, err := l.Acquire(context.Background(), "h:443"); !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want busy after the wait", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("waited %s, want about 50ms", d)
	}

	long := New(1, time.Hour)
	r, _ := long.Acquire(context.Background(), "h:443")
	defer r()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := long.Acquire(ctx, "h:443"); !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want busy when the context ends", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %s past the context's deadline", d)
	}

	// A waiter gets the slot as soon as it is released.
	one := New(1, time.Hour)
	held, _ := one.Acquire(context.Background(), "x")
	got := make(chan error, 1)
	go func() {
		r, err := one.Acquire(context.Background(), "x")
		if err == nil {
			r()
		}
		got <- err
	}()
	held()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the released slot")
	}
}

func TestLimiter_NilAllowsEverything(t *testing.T) {
	var l *Limiter
	r, err := l.Acquire(context.Background(), "h")
	if err != nil {
		t.Fatal(err)
	}
	r()
}

func TestDeadlines_ResponseHeaderCutsAHangingServer(t *testing.T) {
	addr := nettest.NewHanging(t).Addr
	d := Deadlines{Dial: time.Second, TLSHandshake: time.Second, ResponseHeader: 200 * time.Millisecond}
	client := &http.Client{Transport: d.Transport(nil)}
	// The overall timeout is long, as a spec.timeout would be; the first-byte deadline ends it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/index.yaml", nil)
	start := time.Now()
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a server that never answers answered")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the request failed after %s, want about the 200ms response-header deadline", d)
	}
	if ctx.Err() != nil {
		t.Errorf("the overall timeout ended the request, not the response-header deadline: %v", err)
	}
}

func TestDeadlines_TLSHandshakeCutsAHangingServer(t *testing.T) {
	addr := nettest.NewHanging(t).Addr
	d := Deadlines{Dial: time.Second, TLSHandshake: 200 * time.Millisecond, ResponseHeader: time.Minute}
	client := &http.Client{Transport: d.Transport(nil)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v2/", nil)
	start := time.Now()
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a server that never answers answered")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the request failed after %s, want about the 200ms TLS handshake deadline", d)
	}
}
