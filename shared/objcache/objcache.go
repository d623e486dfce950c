// Package objcache keeps, for a controller that applies objects, a metadata-only view of the
// objects it owns: one informer per kind met, started when a reconcile first meets the kind,
// limited by a label selector to the objects the controller (or Helm, for helm-controller)
// labelled, and shared by every object that applies. It answers two questions without a
// request to the API server: has this object changed since we last saw it (its
// resourceVersion, or only its status), and when does it next change (to wake a health wait at
// once).
//
// Little of each object: an entry is an object's name, resourceVersion, generation and a digest
// of the rest of its metadata, so a controller that applies 10,000 objects keeps a few MiB. A
// cache told the field manager of the controller's applies (Options.Manager) digests only what
// that manager owns (its managed-fields entry), the object's UID and its deletion: another
// writer's change to a field the controller applied moves the field out of that entry, while
// kube-controller-manager's annotations or another controller's labels leave it alone. The
// kinds whose health is read from their status (the workload kinds of apps, batch, policy and
// autoscaling, and custom resources) are watched whole and keep their status too (and the few
// fields of spec that kstatus reads), so that a health wait judges them without a read.
package objcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cache is the metadata view. It is a manager Runnable: add it to the manager, which starts it.
type Cache struct {
	cache cache.Cache
	// manager, when set, is the field manager whose managed-fields entry alone the digest holds.
	manager string

	// epoch moves whenever a watch of any kind fails: what was recorded before may have changed
	// unseen, until the informer lists again.
	epoch atomic.Uint64

	mu      sync.Mutex
	kinds   map[schema.GroupVersionKind]bool // informers asked for; true once a handler is added
	waiters map[Key][]*waiter
}

// waiter is one Changed channel, closed once however many of its objects change.
type waiter struct {
	ch   chan struct{}
	once sync.Once
}

func (w *waiter) wake() { w.once.Do(func() { close(w.ch) }) }

// Key names one object.
type Key struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
}

// Options of New.
type Options struct {
	// Selector is a label selector as kubectl's -l takes it: a bare key, as apply-controller's
	// "apply.plumb.dev/name", selects the objects that carry the label whatever its value;
	// helm-controller's "app.kubernetes.io/managed-by=Helm" those of one value. Required.
	Selector string
	// Manager, when set, is the field manager of every server-side apply of the controller: a
	// Snapshot's Meta then digests only that manager's managed-fields entry, the UID and the
	// deletion (see Snapshot). Empty: all labels, annotations and managed fields.
	Manager string
}

// New makes the cache of the objects that match opts.Selector, read with cfg.
func New(cfg *rest.Config, scheme *runtime.Scheme, mapper apimeta.RESTMapper, opts Options) (*Cache, error) {
	selector := opts.Selector
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, fmt.Errorf("label selector %q: %w", selector, err)
	}
	if sel.Empty() {
		// A cache of every object of the cluster is never what a controller means.
		return nil, fmt.Errorf("label selector %q selects every object", selector)
	}
	c := &Cache{manager: opts.Manager, kinds: map[schema.GroupVersionKind]bool{}, waiters: map[Key][]*waiter{}}
	c.cache, err = cache.New(cfg, cache.Options{
		Scheme:               scheme,
		Mapper:               mapper,
		DefaultLabelSelector: sel,
		DefaultTransform:     c.slim,
		DefaultWatchErrorHandler: func(ctx context.Context, r *toolscache.Reflector, err error) {
			c.epoch.Add(1)
			toolscache.DefaultWatchErrorHandler(ctx, r, err)
		},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Start runs the informers until ctx ends.
func (c *Cache) Start(ctx context.Context) error { return c.cache.Start(ctx) }

// Epoch is the count of failed watches so far; a Snapshot taken at another epoch cannot be
// trusted to match what the cache shows.
func (c *Cache) Epoch() uint64 { return c.epoch.Load() }

// newObject returns an empty object of the kind as the cache holds it: whole for the kinds
// whose status it keeps, metadata only for the others.
func newObject(gvk schema.GroupVersionKind) client.Object {
	if KeepsStatus(gvk.GroupKind()) {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		return u
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	return m
}

// KeepsStatus reports whether the cache keeps the status of objects of group gk, so that Object
// can answer for them: the kinds whose generation moves with every change but of status
// (GenerationTracked), whose health kstatus reads from their status.
func KeepsStatus(gk schema.GroupKind) bool { return GenerationTracked(gk) }

// Object returns the object as the cache has it now, for the kinds whose status it keeps: its
// metadata (without labels, annotations or managed fields), status, and the fields of spec
// kstatus reads. ok is false when the kind's status is not kept, its informer has not synced, or
// the object is not in the cache.
func (c *Cache) Object(ctx context.Context, k Key) (*unstructured.Unstructured, bool) {
	if !KeepsStatus(k.GVK.GroupKind()) {
		return nil, false
	}
	inf, ok := c.informer(ctx, k.GVK)
	if !ok || !inf.HasSynced() {
		return nil, false
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.GVK)
	if err := c.cache.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, u); err != nil {
		return nil, false
	}
	return u, true
}

// Get returns the snapshot of the object as the cache has it now. synced is false when the
// kind's informer is new (it starts now) or not synced yet, or when the kind has no informer
// (a kind the server does not serve): the caller must then ask the API server. found is false
// when the synced cache does not hold the object.
func (c *Cache) Get(ctx context.Context, k Key) (s Snapshot, found, synced bool) {
	inf, ok := c.informer(ctx, k.GVK)
	if !ok || !inf.HasSynced() {
		return Snapshot{}, false, false
	}
	o := newObject(k.GVK)
	err := c.cache.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, o)
	if err != nil {
		return Snapshot{}, false, client.IgnoreNotFound(err) == nil
	}
	return c.SnapshotOf(o, c.Epoch()), true, true
}

// Changed returns a channel that is closed at the next change (or deletion) of any of the
// objects that the cache sees, and a function that stops watching for it. The channel is nil
// when a kind cannot be watched (or its informer has not synced): a waiter polls instead.
func (c *Cache) Changed(ctx context.Context, keys []Key) (<-chan struct{}, func()) {
	w := &waiter{ch: make(chan struct{})}
	for _, k := range keys {
		if inf, ok := c.informer(ctx, k.GVK); !ok || !inf.HasSynced() {
			return nil, func() {}
		}
	}
	c.mu.Lock()
	for _, k := range keys {
		c.waiters[k] = append(c.waiters[k], w)
	}
	c.mu.Unlock()
	return w.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, k := range keys {
			list := c.waiters[k]
			for i, x := range list {
				if x == w {
					list = append(list[:i], list[i+1:]...)
					break
				}
			}
			if len(list) == 0 {
				delete(c.waiters, k)
			} else {
				c.waiters[k] = list
			}
		}
	}
}

// informer returns the kind's informer, asking the cache to start it (without waiting for it to
// sync) the first time.
func (c *Cache) informer(ctx context.Context, gvk schema.GroupVersionKind) (cache.Informer, bool) {
	inf, err := c.cache.GetInformer(ctx, newObject(gvk), cache.BlockUntilSynced(false))
	if err != nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.kinds[gvk] {
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.wake(gvk, o) },
			UpdateFunc: func(_, o any) { c.wake(gvk, o) },
			DeleteFunc: func(o any) { c.wake(gvk, o) },
		}); err != nil {
			return nil, false
		}
		c.kinds[gvk] = true
	}
	return inf, true
}

func (c *Cache) wake(gvk schema.GroupVersionKind, o any) {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	m, err := apimeta.Accessor(o)
	if err != nil {
		return
	}
	k := Key{GVK: gvk, Namespace: m.GetNamespace(), Name: m.GetName()}
	c.mu.Lock()
	list := c.waiters[k]
	delete(c.waiters, k)
	c.mu.Unlock()
	for _, w := range list {
		w.wake()
	}
}

// Snapshot is what is remembered of an object as it was seen at one resourceVersion.
type Snapshot struct {
	ResourceVersion string
	Generation      int64
	// Meta is a digest of what an edit of anything but status changes even when it leaves the
	// generation alone: labels, annotations, finalizers, owner references, deletion and every
	// managed-fields entry that is not of the status subresource. Of a cache with a Manager
	// (Own set), it is the digest of the UID, the deletion and that manager's entries only: a
	// write by anyone else that changes a field the manager applied takes the field out of the
	// manager's entry (the API server moves the ownership of what an update changes to its
	// writer), so an unchanged entry means every applied field still has its applied value.
	Meta  string
	Own   bool
	Epoch uint64
}

// digestKey holds, in a cached object's annotations, the digest of the metadata the cache does
// not keep (see slim).
const digestKey = "objcache.plumb.dev/meta"

// slim keeps of an object what a Snapshot needs: its name, resourceVersion and generation, and,
// instead of its labels, annotations and managed fields (often most of its metadata: a
// last-applied annotation holds the whole object), their digest. Of a kind whose status the
// cache keeps it also keeps the status and the fields of spec that kstatus reads.
func (c *Cache) slim(o any) (any, error) {
	switch o := o.(type) {
	case *metav1.PartialObjectMetadata:
		d := c.metaDigest(o)
		o.ManagedFields, o.Labels = nil, nil
		o.Annotations = map[string]string{digestKey: d}
		return o, nil
	case *unstructured.Unstructured:
		out := &unstructured.Unstructured{Object: map[string]any{}}
		out.SetAPIVersion(o.GetAPIVersion())
		out.SetKind(o.GetKind())
		out.SetNamespace(o.GetNamespace())
		out.SetName(o.GetName())
		out.SetUID(o.GetUID())
		out.SetResourceVersion(o.GetResourceVersion())
		out.SetGeneration(o.GetGeneration())
		out.SetDeletionTimestamp(o.GetDeletionTimestamp())
		out.SetAnnotations(map[string]string{digestKey: c.metaDigest(o)})
		if st, ok := o.Object["status"]; ok {
			out.Object["status"] = st
		}
		if spec := kstatusSpec(o); len(spec) > 0 {
			out.Object["spec"] = spec
		}
		return out, nil
	}
	return o, nil
}

// kstatusSpec returns the fields of a workload's spec that kstatus reads to judge it (replicas,
// the update strategy and its partition, a Job's completions and parallelism); custom
// resources are judged by their status alone.
func kstatusSpec(u *unstructured.Unstructured) map[string]any {
	if strings.Contains(u.GroupVersionKind().Group, ".") {
		return nil
	}
	spec, ok := u.Object["spec"].(map[string]any)
	if !ok {
		return nil
	}
	out := map[string]any{}
	for _, f := range []string{"replicas", "updateStrategy", "completions", "parallelism", "paused", "suspend", "minReadySeconds"} {
		if v, ok := spec[f]; ok {
			out[f] = v
		}
	}
	return out
}

// SnapshotOf takes the snapshot of an object read (or written) at epoch, digested as the cache
// digests what it holds.
func (c *Cache) SnapshotOf(o metav1.Object, epoch uint64) Snapshot {
	d, ok := o.GetAnnotations()[digestKey]
	if !ok || len(o.GetAnnotations()) != 1 {
		d = c.metaDigest(o)
	}
	return Snapshot{ResourceVersion: o.GetResourceVersion(), Generation: o.GetGeneration(), Meta: d, Own: c.manager != "", Epoch: epoch}
}

func (c *Cache) metaDigest(o metav1.Object) string {
	var managed []metav1.ManagedFieldsEntry
	for _, e := range o.GetManagedFields() {
		if e.Subresource != "status" && (c.manager == "" || e.Manager == c.manager) {
			managed = append(managed, e)
		}
	}
	var b []byte
	if c.manager != "" {
		b, _ = json.Marshal([]any{o.GetUID(), o.GetDeletionTimestamp(), managed})
	} else {
		b, _ = json.Marshal([]any{o.GetLabels(), o.GetAnnotations(), o.GetFinalizers(), o.GetOwnerReferences(), o.GetDeletionTimestamp(), managed})
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Compare tells how now differs from was: Same (not changed), StatusOnly (nothing the
// controller applied changed: the status, or what others own), or Edited (what was applied may
// have changed). Snapshots of the manager's own entry (Own) tell the two apart for every kind;
// whole-metadata snapshots only for kinds whose generation moves with every change but status
// (generationTracked): for the others any new resourceVersion is an edit.
func Compare(was, now Snapshot, generationTracked bool) Change {
	switch {
	case was.ResourceVersion == "" || was.Epoch != now.Epoch:
		return Edited
	case was.ResourceVersion == now.ResourceVersion:
		return Same
	case was.Own && now.Own && was.Meta == now.Meta && was.Generation == now.Generation:
		return StatusOnly
	case generationTracked && was.Generation > 0 && was.Generation == now.Generation && was.Meta == now.Meta:
		return StatusOnly
	}
	return Edited
}

// Change is the outcome of Compare.
type Change int

// The outcomes of Compare.
const (
	Same Change = iota
	StatusOnly
	Edited
)

// GenerationTracked reports whether the API server moves the generation of objects of group
// gk at every change but of status and metadata: the workload kinds of apps, batch, policy and
// autoscaling, and custom resources. Core kinds (Service, ConfigMap, ...) do not.
func GenerationTracked(gk schema.GroupKind) bool {
	switch gk.Group {
	case "":
		return false
	case "apps", "batch", "policy", "autoscaling":
		return true
	}
	// Built-in groups end in k8s.io (or have none of a dot): their strategies differ. Custom
	// resources always move the generation on a change of anything but metadata and status.
	return strings.Contains(gk.Group, ".") && !strings.HasSuffix(gk.Group, ".k8s.io")
}
