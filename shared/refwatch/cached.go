package refwatch

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cached returns a reader that reads an object of a kind whose watch has synced from the
// watch's cache, and any other from c. Pass it to Get and NotReady: a no-op reconcile then asks
// the API server nothing for its references. The cache holds an object as its watch last saw
// it; a change of the object also queues its referrers, so the reconcile that follows a change
// reads it changed.
func (w *Watcher) Cached(c client.Reader) client.Reader {
	if w == nil {
		return c
	}
	return &cachedReader{w: w, Reader: c}
}

// cachedReader reads through the Watcher's cache the kinds it watches.
type cachedReader struct {
	w *Watcher
	client.Reader
}

func (r *cachedReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return r.w.reader(obj.GetObjectKind().GroupVersionKind(), r.Reader).Get(ctx, key, obj, opts...)
}

// reader is the cache when gvk's watch has synced, else c.
func (w *Watcher) reader(gvk schema.GroupVersionKind, c client.Reader) client.Reader {
	if gvk.Empty() {
		return c // a typed object: only unstructured ones are watched here
	}
	w.mu.Lock()
	synced, found := w.kinds[gvk.GroupKind()]
	w.mu.Unlock()
	if !found {
		return c
	}
	select {
	case <-synced:
		return w.cache
	default:
		return c
	}
}
