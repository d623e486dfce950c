package controller

import (
	"strings"
	"sync"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/plumb-dev/plumb/source-controller/internal/storage"
)

// maxCachedBuilds bounds the build cache; an evicted entry only costs one more fetch.
const maxCachedBuilds = 4096

// buildCache maps a build key (URL, commit, settings) to an artifact already in storage.
type buildCache struct {
	mu sync.Mutex
	m  map[string]*meta.Artifact
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
