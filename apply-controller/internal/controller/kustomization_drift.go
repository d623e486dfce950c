package controller

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	ssautil "github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/objcache"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// Drift from watches. After a successful run, each applied object's snapshot (resourceVersion,
// generation, a digest of its metadata) is recorded as the run's own reads and writes returned
// it. On a reconcile that changes nothing of ours (same revision, build and generation, last run
// healthy, no reconcile request), an object whose snapshot in the metadata cache (shared/objcache)
// is the recorded one cannot have drifted: it is neither read nor dry-run. Records live in
// memory only, so a restarted controller (and any edit made while it was down) goes through a
// full dry-run first; so does every object after a watch of the cache failed (the cache may have
// missed a change until it lists again). A reconcile request triages from the cache too, and
// must still put back an edit made a moment before it, which the watch may not have delivered
// yet: the objects are watched for a while after the request, and a change wakes the
// Kustomization at once (watchAfterRequest).

// observed is what one reconcile's resource-manager client read and wrote, by object.
type observed struct {
	mu      sync.Mutex
	objects map[objcache.Key]*unstructured.Unstructured
	// absent, when set, tells of an object that the metadata cache knows to be missing: its
	// read is answered NotFound without a request (faked is then set).
	absent func(objcache.Key) bool
	faked  bool
	// created holds the objects the cache knew to be missing, created by a real apply where
	// the resource manager asked for a dry-run (see createInsteadOfDryRun), until its apply.
	created map[objcache.Key]*unstructured.Unstructured
	// made lists every object so created; they stay even when the run fails.
	made []*unstructured.Unstructured
}

type observedKey struct{}

// withObserved makes the resource-manager client note, in o, every object it reads or writes
// under ctx (not the answers of dry-runs: they show what would be, not what is).
func withObserved(ctx context.Context, o *observed) context.Context {
	return context.WithValue(ctx, observedKey{}, o)
}

func (o *observed) note(obj client.Object) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || u.GetResourceVersion() == "" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objects[keyOf(u)] = u.DeepCopy()
}

func (o *observed) get(u *unstructured.Unstructured) *unstructured.Unstructured {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.objects[keyOf(u)]
}

func (o *observed) drop(u *unstructured.Unstructured) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.objects, keyOf(u))
}

func keyOf(u *unstructured.Unstructured) objcache.Key {
	return objcache.Key{GVK: u.GroupVersionKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// observing wraps the client of a resource manager so that the reconcile's observed set sees
// its reads and writes.
func observing(c client.WithWatch) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			o, _ := ctx.Value(observedKey{}).(*observed)
			if u, ok := obj.(*unstructured.Unstructured); ok && o != nil && o.absent != nil {
				gvk := u.GroupVersionKind()
				if o.absent(objcache.Key{GVK: gvk, Namespace: key.Namespace, Name: key.Name}) {
					o.mu.Lock()
					o.faked = true
					o.mu.Unlock()
					return apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind)}, key.Name)
				}
			}
			err := c.Get(ctx, key, obj, opts...)
			if o != nil && err == nil {
				o.note(obj)
			}
			return err
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			po := &client.PatchOptions{}
			po.ApplyOptions(opts)
			o, _ := ctx.Value(observedKey{}).(*observed)
			if u, ok := obj.(*unstructured.Unstructured); ok && o != nil && o.absent != nil && patch.Type() == types.ApplyPatchType {
				if len(po.DryRun) > 0 && o.absent(keyOf(u)) {
					return o.createInsteadOfDryRun(ctx, c, u, patch, po)
				}
				if len(po.DryRun) == 0 && o.takeCreated(u) {
					return nil
				}
			}
			err := c.Patch(ctx, obj, patch, opts...)
			if o != nil && err == nil && len(po.DryRun) == 0 {
				o.note(obj)
			}
			return err
		},
	})
}

// absentFrom returns what observed.absent asks: whether the synced metadata cache lacks an
// object of objs that is ours to create. An object marked ssa: IfNotPresent is always read:
// an object of that name that is not ours (not labeled, so not cached) must stay as it is.
func (r *KustomizationReconciler) absentFrom(ctx context.Context, objs []*unstructured.Unstructured) func(objcache.Key) bool {
	if r.owned == nil {
		return nil
	}
	eligible := map[objcache.Key]bool{}
	for _, o := range objs {
		if !ssautil.AnyInMetadata(o, applyv1.SSASelector("IfNotPresent")) {
			eligible[keyOf(o)] = true
		}
	}
	return func(k objcache.Key) bool {
		if !eligible[k] {
			return false
		}
		_, found, synced := r.owned.Get(ctx, k)
		return synced && !found
	}
}

// createInsteadOfDryRun applies, for real, an object that the synced cache knows to be missing,
// where the resource manager validates a stage with a dry-run before it applies: the dry-run of
// a create costs the API server about what the create does, and the create is what follows.
// The answer stands in for the dry-run's (without its resourceVersion when the object is new,
// so that the change set says created) and for the apply that follows (takeCreated). So a run
// that fails validation may leave objects it created, recorded in the inventory (made, also
// when the create went unanswered), but changes no object that was there before it.
func (o *observed) createInsteadOfDryRun(ctx context.Context, c client.WithWatch, u *unstructured.Unstructured, patch client.Patch, po *client.PatchOptions) error {
	opts := []client.PatchOption{client.FieldOwner(po.FieldManager)}
	if po.Force != nil && *po.Force {
		opts = append(opts, client.ForceOwnership)
	}
	if err := c.Patch(ctx, u, patch, opts...); err != nil {
		if status := apierrors.APIStatus(nil); !errors.As(err, &status) {
			// No answer (the stage's context ended as another of its applies failed, the
			// connection broke): the server may have created it all the same. It goes in the
			// inventory, to prune; pruning an object that is not there does nothing.
			o.mu.Lock()
			o.made = append(o.made, u.DeepCopy())
			o.mu.Unlock()
		}
		return err
	}
	o.note(u)
	o.mu.Lock()
	if o.created == nil {
		o.created = map[objcache.Key]*unstructured.Unstructured{}
	}
	o.created[keyOf(u)] = u.DeepCopy()
	o.made = append(o.made, u.DeepCopy())
	o.mu.Unlock()
	// An object of that name that was there all the same (not ours, so not cached) has other
	// managers' entries besides ours: it is reported configured, as a dry-run would have shown.
	if mf := u.GetManagedFields(); len(mf) == 1 && mf[0].Manager == po.FieldManager {
		u.SetResourceVersion("")
	}
	return nil
}

// takeCreated answers the apply of an object createInsteadOfDryRun created with what the
// create returned, and reports whether it did.
func (o *observed) takeCreated(u *unstructured.Unstructured) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := keyOf(u)
	c, ok := o.created[k]
	if ok {
		delete(o.created, k)
		c.DeepCopyInto(u)
	}
	return ok
}

// madeInventory is the inventory of the objects createInsteadOfDryRun created.
func (o *observed) madeInventory() *applyv1.Inventory {
	o.mu.Lock()
	defer o.mu.Unlock()
	inv := &applyv1.Inventory{}
	for _, u := range o.made {
		inv.Entries = append(inv.Entries, applyv1.InventoryEntry{ID: object.UnstructuredToObjMetadata(u).String(), Version: u.GroupVersionKind().Version})
	}
	return inv
}

func (o *observed) fakedReads() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.faked
}

// records holds, per Kustomization, the snapshot of each object as its last successful run
// left it.
type records struct {
	mu sync.Mutex
	m  map[types.NamespacedName]map[objcache.Key]objcache.Snapshot
}

func (r *records) get(k types.NamespacedName) map[objcache.Key]objcache.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[k]
}

func (r *records) set(k types.NamespacedName, s map[objcache.Key]objcache.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[types.NamespacedName]map[objcache.Key]objcache.Snapshot{}
	}
	r.m[k] = s
}

// advance moves the record of one object of a Kustomization to now, when now differs from it
// in status only.
func (r *records) advance(k types.NamespacedName, o objcache.Key, now objcache.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if was, ok := r.m[k][o]; ok && objcache.Compare(was, now, objcache.GenerationTracked(o.GVK.GroupKind())) == objcache.StatusOnly {
		r.m[k][o] = now
	}
}

func (r *records) forget(k types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, k)
}

// requested reports whether obj carries a reconcile request not yet handled.
func requested(obj *applyv1.Kustomization) bool {
	v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations())
	return ok && v != obj.Status.LastHandledReconcileAt
}

// triage sorts the objects of an unchanged build by what the cache shows of them since the
// last run: those that may have drifted (to dry-run and apply), and those whose status alone
// changed (to judge their health again). The rest are as the last run left them. With no
// cache (a remote cluster), every object may have drifted.
func (r *KustomizationReconciler) triage(ctx context.Context, obj *applyv1.Kustomization, objs []*unstructured.Unstructured) (drifted, statusOnly []*unstructured.Unstructured) {
	rec := r.records.get(client.ObjectKeyFromObject(obj))
	if r.owned == nil || rec == nil {
		return objs, nil
	}
	for _, o := range objs {
		k := keyOf(o)
		was, ok := rec[k]
		now, found, synced := r.owned.Get(ctx, k)
		if !ok || !found || !synced {
			drifted = append(drifted, o)
			continue
		}
		switch objcache.Compare(was, now, objcache.GenerationTracked(k.GVK.GroupKind())) {
		case objcache.Same:
		case objcache.StatusOnly:
			statusOnly = append(statusOnly, o)
		default:
			drifted = append(drifted, o)
		}
	}
	return drifted, statusOnly
}

// requestWatch is how long the objects of an unchanged build are watched after a reconcile
// request (watchAfterRequest).
const requestWatch = 30 * time.Second

// watchAfterRequest keeps the promise of a reconcile request, that an edit made a moment before
// it is put back at once, without reading the objects from the API server: the request's
// triage takes them from the cache, which may not have the edit yet. For requestWatch after the
// request, every change the cache sees of one of objs wakes the Kustomization, whose next
// reconcile (from the cache again, with no request) dry-runs and applies what changed. Watched
// before the cache is read, so that no change falls between the look and the watch; a kind
// whose informer has not synced is not watched (its objects are dry-run by the triage).
func (r *KustomizationReconciler) watchAfterRequest(obj *applyv1.Kustomization, objs []*unstructured.Unstructured) {
	if r.owned == nil || r.wakeups == nil || len(objs) == 0 {
		return
	}
	keys := make([]objcache.Key, len(objs))
	for i, o := range objs {
		keys[i] = keyOf(o)
	}
	ctx, cancel := context.WithTimeout(r.wakeCtx, requestWatch)
	changed, stop := r.owned.Changed(ctx, keys)
	if changed == nil {
		cancel()
		return
	}
	key := client.ObjectKeyFromObject(obj)
	go func() {
		defer cancel()
		for {
			select {
			case <-changed:
			case <-ctx.Done():
				stop()
				return
			}
			stop()
			// Watched again before the wake: the reconcile it causes reads the cache after.
			changed, stop = r.owned.Changed(ctx, keys)
			if !r.wake(ctx, key) || changed == nil {
				stop()
				return
			}
		}
	}()
}

// remember records the snapshots of a successful run: of each object of objs as the run last
// read or wrote it while applying (applied), advanced to what the health checks read when
// only its status changed since. Objects of objs the run did not see keep their record from
// before when keep is set (an unchanged build), else they have none.
func (r *KustomizationReconciler) remember(obj *applyv1.Kustomization, objs []*unstructured.Unstructured, applied, checked *observed, keep bool) {
	if r.owned == nil {
		return
	}
	key := client.ObjectKeyFromObject(obj)
	old := r.records.get(key)
	rec := make(map[objcache.Key]objcache.Snapshot, len(objs))
	epoch := r.owned.Epoch()
	for _, o := range objs {
		k := keyOf(o)
		s, ok := old[k]
		if !keep {
			ok = false
		}
		if u := applied.get(o); u != nil {
			s, ok = r.owned.SnapshotOf(u, epoch), true
		}
		if !ok {
			continue
		}
		if u := checked.get(o); u != nil {
			now := r.owned.SnapshotOf(u, epoch)
			if c := objcache.Compare(s, now, objcache.GenerationTracked(k.GVK.GroupKind())); c == objcache.StatusOnly {
				s = now
			}
		}
		rec[k] = s
	}
	r.records.set(key, rec)
}

// newObserved is an empty observed set.
func newObserved() *observed {
	return &observed{objects: map[objcache.Key]*unstructured.Unstructured{}}
}
