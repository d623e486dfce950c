package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// handledRequests remembers, per Kustomization, the reconcile request its last status write
// recorded as handled. A run woken right after that write (by a watch event of its own apply,
// say) may read the Kustomization from a cache that has not seen the write: without this it
// took the request for a new one and wrote status.lastHandledReconcileAt again.
type handledRequests struct {
	mu sync.Mutex
	m  map[types.NamespacedName]handledRequest
}

type handledRequest struct {
	uid types.UID // a Kustomization made again under the name is another
	at  string
}

// catchUp gives obj the request remembered as handled when obj still carries it and shows an
// older one handled: the cache is behind the write.
func (h *handledRequests) catchUp(key types.NamespacedName, obj *applyv1.Kustomization) {
	v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations())
	if !ok || v == obj.Status.LastHandledReconcileAt {
		return
	}
	h.mu.Lock()
	e, found := h.m[key]
	h.mu.Unlock()
	if found && e.uid == obj.UID && e.at == v {
		obj.Status.LastHandledReconcileAt = v
	}
}

// remember records the request obj's status, as written, shows handled.
func (h *handledRequests) remember(key types.NamespacedName, obj *applyv1.Kustomization) {
	if obj.Status.LastHandledReconcileAt == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[types.NamespacedName]handledRequest{}
	}
	h.m[key] = handledRequest{uid: obj.UID, at: obj.Status.LastHandledReconcileAt}
}

func (h *handledRequests) forget(key types.NamespacedName) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, key)
}
