package helm

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plumb-dev/plumb/shared/hostlimit"
)

// hang listens on loopback, accepts connections and never answers.
func hang(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestFetchIndex_AServerThatNeverAnswersFailsAtTheResponseHeaderDeadline(t *testing.T) {
	SetDeadlines(hostlimit.Deadlines{Dial: time.Second, TLSHandshake: time.Second, ResponseHeader: 300 * time.Millisecond})
	t.Cleanup(func() { SetDeadlines(hostlimit.DefaultDeadlines) })
	addr := hang(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := Client(Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := FetchIndex(ctx, client, "http://"+addr+"/charts", Credentials{}, 1<<20); err == nil {
		t.Fatal("a server that never answers served an index")
	}
	if d := time.Since(start); d > 10*time.Second || ctx.Err() != nil {
		t.Errorf("FetchIndex failed after %s (overall timeout: %v), want about the 300ms response-header deadline", d, ctx.Err())
	}
}
