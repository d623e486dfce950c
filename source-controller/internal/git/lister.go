package git

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// Lister lists a remote's refs once for all the callers that ask about the same remote and
// credentials at about the same time: a caller that comes while a listing runs waits for the
// next one, which starts when the running one ends and serves everyone who came meanwhile. So
// each caller gets refs listed after it asked (a push that a webhook announced is never answered
// with the refs from before it), and a hundred GitRepositories of one repository cost a handful
// of listings instead of a hundred.
type Lister struct {
	mu   sync.Mutex
	runs map[string]*listRun
}

// listRun is the listing of one key: the one under way and the batch waiting for it.
type listRun struct {
	pending *listBatch
}

type listBatch struct {
	done chan struct{}
	list func(context.Context) ([]*plumbing.Reference, error)
	ctx  context.Context // the first caller's, without its cancellation
	wait time.Duration   // how long the listing may take
	refs []*plumbing.Reference
	err  error
}

// ErrListingSlow: the listing a caller queued behind did not end within its wait; the host is
// slow, and the caller should give its worker back rather than wait on.
var ErrListingSlow = errors.New("a listing of the same remote is still running")

// List returns list's refs for key, from a listing that started after this call. list runs
// detached from any one caller, bounded by timeout. The caller that starts a listing waits until
// its own ctx is done; a caller queued behind a running listing waits at most queueWait, then
// gets ErrListingSlow, so that a host that hangs holds one worker per listing, not one per
// caller (queueWait 0: no bound but ctx).
func (l *Lister) List(ctx context.Context, key string, timeout, queueWait time.Duration, list func(context.Context) ([]*plumbing.Reference, error)) ([]*plumbing.Reference, error) {
	l.mu.Lock()
	if l.runs == nil {
		l.runs = map[string]*listRun{}
	}
	var b *listBatch
	queued := false
	run, running := l.runs[key]
	switch {
	case !running:
		b = &listBatch{done: make(chan struct{}), list: list, ctx: context.WithoutCancel(ctx), wait: timeout}
		l.runs[key] = &listRun{}
		go l.start(key, b)
	case run.pending == nil:
		b = &listBatch{done: make(chan struct{}), list: list, ctx: context.WithoutCancel(ctx), wait: timeout}
		run.pending, queued = b, true
	default:
		b, queued = run.pending, true
	}
	l.mu.Unlock()
	var slow <-chan time.Time
	if queued && queueWait > 0 {
		t := time.NewTimer(queueWait)
		defer t.Stop()
		slow = t.C
	}
	select {
	case <-b.done:
		return b.refs, b.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-slow:
		return nil, ErrListingSlow
	}
}

// start runs b, then the batch that gathered meanwhile, until none is left.
func (l *Lister) start(key string, b *listBatch) {
	for b != nil {
		ctx, cancel := context.WithTimeout(b.ctx, b.wait)
		b.refs, b.err = b.list(ctx)
		cancel()
		close(b.done)
		l.mu.Lock()
		run := l.runs[key]
		b, run.pending = run.pending, nil
		if b == nil {
			delete(l.runs, key)
		}
		l.mu.Unlock()
	}
}
