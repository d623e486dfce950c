package status

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Patcher writes what one reconcile changed in an object: its status in one merge patch of the
// status subresource, and its metadata (finalizers) in one merge patch of the object when they
// changed. Conditions travel with the rest of the status, so no reader ever sees a new Ready
// next to an old observedGeneration (fluxcd/pkg/runtime/patch writes conditions first, in a
// request of their own). Only the controller writes its objects' status, so the patch carries
// no resourceVersion and never conflicts.
type Patcher struct {
	c      client.Client
	before map[string]any
	wrote  bool
}

// NewPatcher remembers obj as read, to compare with at Patch.
func NewPatcher(c client.Client, obj client.Object) *Patcher {
	before, err := toMap(obj)
	if err != nil {
		before = nil // Patch reports it
	}
	return &Patcher{c: c, before: before}
}

// toMap is obj as JSON-shaped maps of its own: the converter hands an unstructured object's own
// map back, which later changes to obj would change too.
func toMap(obj client.Object) (map[string]any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.DeepCopy().Object, nil
	}
	return runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
}

// Patch writes the changes since NewPatcher with owner as field manager, then remembers obj as
// written. A request is sent only for a part that changed.
func (p *Patcher) Patch(ctx context.Context, obj client.Object, owner string) error {
	p.wrote = false
	if p.before == nil {
		return fmt.Errorf("status patcher of %s: the object read could not be converted", client.ObjectKeyFromObject(obj))
	}
	after, err := toMap(obj)
	if err != nil {
		return fmt.Errorf("converting %s for its status patch: %w", client.ObjectKeyFromObject(obj), err)
	}
	statusPatch, err := mergePatch(map[string]any{"status": p.before["status"]}, map[string]any{"status": after["status"]})
	if err != nil {
		return err
	}
	bm, _ := p.before["metadata"].(map[string]any)
	am, _ := after["metadata"].(map[string]any)
	metaPatch, err := mergePatch(
		map[string]any{"metadata": map[string]any{"finalizers": bm["finalizers"]}},
		map[string]any{"metadata": map[string]any{"finalizers": am["finalizers"]}})
	if err != nil {
		return err
	}
	// Both patches are computed before either is sent: each request decodes the server's answer
	// into obj, so obj ends as the server has it.
	if metaPatch != nil {
		if err := p.c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, metaPatch), client.FieldOwner(owner)); err != nil {
			return err
		}
	}
	if statusPatch != nil {
		if err := p.c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, statusPatch), client.FieldOwner(owner)); err != nil {
			return err
		}
	}
	p.before, p.wrote = after, true
	return nil
}

// Wrote reports whether the last Patch succeeded: the API server holds obj as it was given.
func (p *Patcher) Wrote() bool { return p.wrote }

// mergePatch is the JSON merge patch (RFC 7386) that turns before into after, or nil when they
// are the same.
func mergePatch(before, after map[string]any) ([]byte, error) {
	if reflect.DeepEqual(before, after) {
		return nil, nil
	}
	patch := diff(before, after)
	if len(patch) == 0 {
		return nil, nil
	}
	return json.Marshal(patch)
}

// diff returns the merge patch between two JSON objects: changed and new keys with their new
// values, removed keys as null. Lists are replaced whole, as merge patches do.
func diff(before, after map[string]any) map[string]any {
	out := map[string]any{}
	for k, a := range after {
		b, ok := before[k]
		if ok && reflect.DeepEqual(a, b) {
			continue
		}
		am, aok := a.(map[string]any)
		bm, bok := b.(map[string]any)
		if ok && aok && bok {
			if d := diff(bm, am); len(d) > 0 {
				out[k] = d
			}
			continue
		}
		if a == nil && !ok {
			continue
		}
		out[k] = a
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out[k] = nil
		}
	}
	return out
}
