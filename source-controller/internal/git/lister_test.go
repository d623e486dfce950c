package git

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// A caller that comes while a listing runs gets the next listing, never the running one, and
// everyone who came meanwhile shares that next listing.
func TestListerServesEachCallerAListingStartedAfterIt(t *testing.T) {
	var l Lister
	var calls atomic.Int32
	release := make(chan struct{})
	started := make(chan int32, 10)
	list := func(context.Context) ([]*plumbing.Reference, error) {
		n := calls.Add(1)
		started <- n
		<-release
		return []*plumbing.Reference{plumbing.NewHashReference("refs/heads/main", plumbing.NewHash(fmt.Sprintf("%040d", n)))}, nil
	}
	ctx := context.Background()
	first := make(chan []*plumbing.Reference, 1)
	go func() {
		refs, err := l.List(ctx, "k", time.Minute, time.Minute, list)
		if err != nil {
			t.Error(err)
		}
		first <- refs
	}()
	if n := <-started; n != 1 {
		t.Fatalf("first listing is call %d", n)
	}
	// Ten callers come while the first listing runs.
	var wg sync.WaitGroup
	got := make([][]*plumbing.Reference, 10)
	var queued sync.WaitGroup
	var waiting atomic.Int32
	for i := range got {
		wg.Add(1)
		queued.Add(1)
		go func() {
			defer wg.Done()
			queued.Done()
			waiting.Add(1)
			refs, err := l.List(ctx, "k", time.Minute, time.Minute, list)
			if err != nil {
				t.Error(err)
			}
			got[i] = refs
		}()
	}
	queued.Wait()
	waitFor(t, func() bool { // all ten are queued behind the running listing
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.runs["k"].pending != nil && waiting.Load() == 10
	})
	close(release)
	wg.Wait()
	if refs := <-first; refs[0].Hash() != plumbing.NewHash(fmt.Sprintf("%040d", 1)) {
		t.Errorf("first caller got listing %s, want 1", refs[0].Hash())
	}
	if c := calls.Load(); c > 3 {
		// The ten share the second listing, but for any that had not reached the queue yet
		// when it started: those share a third.
		t.Errorf("%d listings for 11 callers", c)
	}
	for i, refs := range got {
		if refs[0].Hash() == plumbing.NewHash(fmt.Sprintf("%040d", 1)) {
			t.Errorf("caller %d got the listing that started before it asked", i)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.runs) != 0 {
		t.Errorf("%d runs left after every listing ended", len(l.runs))
	}
}

// A caller whose context ends stops waiting; the listing goes on for the others.
func TestListerCallerGivesUp(t *testing.T) {
	var l Lister
	release := make(chan struct{})
	list := func(context.Context) ([]*plumbing.Reference, error) { <-release; return nil, errors.New("boom") }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := l.List(ctx, "k", time.Minute, time.Minute, list); done <- err }()
	other := make(chan error, 1)
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.runs["k"] != nil })
	go func() { _, err := l.List(context.Background(), "other", time.Minute, time.Minute, list); other <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller got %v", err)
	}
	close(release)
	if err := <-other; err == nil || err.Error() != "boom" {
		t.Errorf("other key got %v, want the listing's error", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond) // a poll with a deadline
	}
}

// A caller queued behind a listing that does not end gives up after its queue wait; the one that
// started the listing keeps waiting.
func TestListerQueuedCallerGivesUpOnASlowHost(t *testing.T) {
	var l Lister
	release := make(chan struct{})
	defer close(release)
	list := func(context.Context) ([]*plumbing.Reference, error) { <-release; return nil, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leader := make(chan error, 1)
	go func() { _, err := l.List(ctx, "k", time.Minute, time.Millisecond, list); leader <- err }()
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.runs["k"] != nil })
	if _, err := l.List(ctx, "k", time.Minute, 10*time.Millisecond, list); !errors.Is(err, ErrListingSlow) {
		t.Fatalf("queued caller got %v, want ErrListingSlow", err)
	}
	select {
	case err := <-leader:
		t.Fatalf("the caller that started the listing gave up: %v", err)
	default:
	}
}
