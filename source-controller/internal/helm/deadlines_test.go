package helm

import (
	"context"
	"testing"
	"time"

	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

func TestFetchIndex_AServerThatNeverAnswersFailsAtTheResponseHeaderDeadline(t *testing.T) {
	SetDeadlines(hostlimit.Deadlines{Dial: time.Second, TLSHandshake: time.Second, ResponseHeader: 300 * time.Millisecond})
	t.Cleanup(func() { SetDeadlines(hostlimit.DefaultDeadlines) })
	addr := nettest.NewHanging(t).Addr
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
