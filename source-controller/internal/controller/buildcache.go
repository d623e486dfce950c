package controller

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"golang.org/x/sync/singleflight"

	"github.com/plumb-dev/plumb/source-controller/internal/storage"
)

// maxCachedBuilds bounds the build cache; an evicted entry only costs one more fetch.
const maxCachedBuilds = 4096

// buildCache maps a build key (URL, commit, settings) to an artifact already in storage, and
// runs each build once for every object that asks for it at the same time.
type buildCache struct {
	mu     sync.Mutex
	m      map[string]*meta.Artifact
	flight singleflight.Group
}

// errBuildTimeout: the caller's reconcile ran out of time while the shared build went on.
var errBuildTimeout = errors.New("timed out (spec.timeout)")

// build returns o's artifact for key: the artifact already built for key (for any object; it is
// hard-linked into o's folder), or the one write makes, once for all the objects that ask at the
// same time. write runs in the flight, which may outlive the caller: it gets a context of its own
// bounded by timeout. revision is o's revision of the content ("": the artifact's own).
func (c *buildCache) build(ctx context.Context, st *storage.Storage, o storage.Object, key, revision string, timeout time.Duration,
	write func(ctx context.Context) (*meta.Artifact, error)) (*meta.Artifact, error) {
	rev := func(a *meta.Artifact) string {
		if revision == "" {
			return a.Revision
		}
		return revision
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		if a := c.get(key); a != nil && st.Has(a) {
			return st.Adopt(o, a, rev(a))
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		a, err := write(bctx)
		if err == nil {
			c.put(key, a)
		}
		return a, err
	})
	var out singleflight.Result
	select {
	case out = <-ch:
	case <-ctx.Done():
		return nil, errBuildTimeout
	}
	if out.Err != nil {
		return nil, out.Err
	}
	a := *out.Val.(*meta.Artifact) // shared with the other callers of the flight: copy, never mutate
	if !strings.HasPrefix(a.Path, storage.Dir(o)+"/") {
		// Built for another object with the same content: link it into this one's folder.
		return st.Adopt(o, &a, rev(&a))
	}
	return &a, nil
}

func (c *buildCache) get(key string) *meta.Artifact {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

func (c *buildCache) put(key string, a *meta.Artifact) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*meta.Artifact{}
	}
	if len(c.m) >= maxCachedBuilds {
		for k := range c.m { // drop an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[key] = a
}

// forget drops the entries whose files lie in the object's folder.
func (c *buildCache) forget(o storage.Object) {
	prefix := storage.Dir(o) + "/"
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, a := range c.m {
		if strings.HasPrefix(a.Path, prefix) {
			delete(c.m, k)
		}
	}
}
