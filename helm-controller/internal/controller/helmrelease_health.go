package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	"github.com/plumb-dev/plumb/shared/health"
	"github.com/plumb-dev/plumb/shared/objcache"
)

// waitHealthy waits, within timeout, until every object of the release's manifest is healthy as
// spec.healthCheckExprs, or else kstatus, judges it, and with jobs until its Jobs have completed
// (as Helm's wait for Jobs; kstatus counts a running Job as current).
//
// The first look at an object is what the API server answered when the action wrote it (h's
// Written), so that objects healthy at once (a Service, a ConfigMap) cost no read. Then, in the
// controller's own cluster, the watch of the objects Helm made (shared/objcache) wakes the wait
// when one of them changes (a Deployment becoming Available ends the wait at once), and a
// workload is judged from the watch without a read once the watch has seen the generation that
// was written (or last read): an older one would judge the spec before the action. Objects the
// watch cannot vouch for are read, from 100 ms, backing off to 2 s (to 30 s while the watch
// wakes the wait). A release in another cluster (spec.kubeConfig) is read at every poll, as
// Helm's own wait does it but from 100 ms rather than every 2 s.
func (r *HelmReleaseReconciler) waitHealthy(ctx context.Context, obj *helmv1.HelmRelease, h plumbrelease.Actions, rls *release.Release, timeout time.Duration, jobs bool) error {
	c, objs, err := r.releaseObjects(ctx, obj, rls)
	if err != nil {
		return err
	}
	var jobObjs []*unstructured.Unstructured
	for _, o := range objs {
		if isJob(o) {
			jobObjs = append(jobObjs, o)
		}
	}
	objs = slices.DeleteFunc(objs, isJob)
	ev, err := healthEvaluator(obj) // checkHealthExprs stalled one that cannot be used
	if err != nil {
		return err
	}
	w := &healthWatch{r: r, h: h, local: obj.Spec.KubeConfig == nil && r.objects != nil, floors: map[objcache.Key]int64{}}
	reader := &floorReader{Reader: c, floors: w.floors}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := health.WaitWith(wctx, reader, objs, w.options(ctx, ev.Status, ev.Judges)); err != nil {
		return fmt.Errorf("release %s revision %d not healthy: %w", rls.Name, rls.Version, err)
	}
	if jobs && len(jobObjs) > 0 {
		if err := health.WaitWith(wctx, reader, jobObjs, w.options(ctx, jobStatus, nil)); err != nil {
			return fmt.Errorf("release %s revision %d not healthy: Jobs not complete: %w", rls.Name, rls.Version, err)
		}
	}
	return nil
}

// healthWatch is what one health wait knows of the release's objects: the action's answers, the
// watch of the controller's cluster (local), and the newest generation written or read of each
// object (floors), below which the watch's copy is older than the action. A wait runs on one
// goroutine: floors needs no lock.
type healthWatch struct {
	r      *HelmReleaseReconciler
	h      plumbrelease.Actions
	local  bool
	floors map[objcache.Key]int64
}

// options are the health.Options of a wait judged by status; judges names the kinds status
// judges from the whole object (health expressions), which the watch's copy cannot serve.
func (w *healthWatch) options(ctx context.Context, status health.StatusFunc, judges func(schema.GroupKind) bool) health.Options {
	opts := health.Options{Status: status, Known: w.written}
	if !w.local {
		return opts
	}
	opts.Cached = func(o *unstructured.Unstructured) *unstructured.Unstructured {
		if judges != nil && judges(o.GroupVersionKind().GroupKind()) {
			return nil
		}
		return w.cached(ctx, o)
	}
	opts.Changed = func(ctx context.Context, objs []*unstructured.Unstructured) (<-chan struct{}, func()) {
		keys := make([]objcache.Key, len(objs))
		for i, o := range objs {
			keys[i] = keyOf(o)
		}
		return w.r.objects.Changed(ctx, keys)
	}
	return opts
}

// written is the action's answer for o, if it wrote o; its generation is the floor of o.
func (w *healthWatch) written(o *unstructured.Unstructured) *unstructured.Unstructured {
	if w.h == nil {
		return nil
	}
	u := w.h.Written(o)
	if u != nil {
		noteFloor(w.floors, keyOf(o), u.GetGeneration())
	}
	return u
}

// cached is o as the watch has it now, when the watch keeps its kind's status and has seen at
// least o's floor; nil otherwise (o is then read).
func (w *healthWatch) cached(ctx context.Context, o *unstructured.Unstructured) *unstructured.Unstructured {
	k := keyOf(o)
	floor, ok := w.floors[k]
	if !ok {
		return nil
	}
	u, ok := w.r.objects.Object(ctx, k)
	if !ok || u.GetGeneration() < floor {
		return nil
	}
	return u
}

// floorReader reads objects for a health wait, noting the generation of each as a floor.
type floorReader struct {
	client.Reader
	floors map[objcache.Key]int64
}

func (f *floorReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := f.Reader.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	k := objcache.Key{GVK: obj.GetObjectKind().GroupVersionKind(), Namespace: key.Namespace, Name: key.Name}
	noteFloor(f.floors, k, obj.GetGeneration())
	return nil
}

// noteFloor raises k's floor to generation.
func noteFloor(floors map[objcache.Key]int64, k objcache.Key, generation int64) {
	if g, ok := floors[k]; !ok || generation > g {
		floors[k] = generation
	}
}

// keyOf names o in the watch.
func keyOf(o *unstructured.Unstructured) objcache.Key {
	return objcache.Key{GVK: o.GroupVersionKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
}
