package takeover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Rollback undoes a takeover that has not been finished: every twin is suspended (so that its
// controller prunes and uninstalls nothing), the objects it applied are handed back to Flux,
// its finalizer is removed and it is deleted; then every Flux object that ran before the
// takeover runs again.
func Rollback(ctx context.Context, c client.Client) (*Report, error) {
	kinds, err := discover(ctx, c)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	// Consumers first, sources last: a twin never loses its source while it still exists.
	for _, s := range slices.Backward(kinds) {
		if !s.Plumb {
			continue
		}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(s.PlumbGVK().GroupVersion().WithKind(s.Kind.Kind + "List"))
		if err := c.List(ctx, list, client.MatchingLabels{MigratedFromLabel: "flux"}); err != nil {
			return nil, fmt.Errorf("list Plumb %s objects: %w", s.Kind.Kind, err)
		}
		for i := range list.Items {
			tw := &list.Items[i]
			if err := removeTwin(ctx, c, s, tw); err != nil {
				r.fail(subject(s.Kind.Kind, tw), err)
				continue
			}
			r.ok(subject(s.Kind.Kind, tw), "Plumb twin removed, nothing pruned")
		}
	}
	for _, s := range kinds {
		if s.FluxVersion == "" {
			continue
		}
		list, err := listFlux(ctx, c, s)
		if err != nil {
			return nil, err
		}
		for i := range list {
			flux := &list[i]
			was, ok := flux.GetAnnotations()[SuspendAnnotation]
			if !ok {
				continue
			}
			msg, err := resume(ctx, c, flux, was)
			if err != nil {
				r.fail(subject(s.Kind.Kind, flux), err)
				continue
			}
			r.ok(subject(s.Kind.Kind, flux), "%s", msg)
		}
	}
	return r, nil
}

// removeTwin suspends a twin, hands what it applied back to Flux, and deletes it without its
// finalizer.
func removeTwin(ctx context.Context, c client.Client, s served, tw *unstructured.Unstructured) error {
	if !kindsSuspended(tw) {
		patch := []byte(`{"spec":{"suspend":true}}`)
		if err := c.Patch(ctx, tw, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return fmt.Errorf("suspend: %w", err)
		}
	}
	if s.Kind.Kind == "Kustomization" {
		if err := handBack(ctx, c, s, tw); err != nil {
			return err
		}
	}
	if len(tw.GetFinalizers()) > 0 {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		if err := c.Patch(ctx, tw, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return fmt.Errorf("remove the finalizer: %w", err)
		}
	}
	if err := c.Delete(ctx, tw); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// handBack hands every object the twin or its Flux Kustomization lists back to Flux.
func handBack(ctx context.Context, c client.Client, s served, tw *unstructured.Unstructured) error {
	entries, _, _ := unstructured.NestedSlice(tw.Object, "status", "inventory", "entries")
	if s.FluxVersion != "" {
		flux := &unstructured.Unstructured{}
		flux.SetGroupVersionKind(s.FluxGVK())
		err := c.Get(ctx, client.ObjectKeyFromObject(tw), flux)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		more, _, _ := unstructured.NestedSlice(flux.Object, "status", "inventory", "entries")
		entries = append(entries, more...)
	}
	seen := map[string]bool{}
	var errs []error
	for _, raw := range entries {
		e, _ := raw.(map[string]any)
		id, _ := e["id"].(string)
		v, _ := e["v"].(string)
		if seen[id] {
			continue
		}
		seen[id] = true
		ref, err := parseInventoryID(id, v)
		if err == nil {
			_, err = adopt(ctx, c, ref, Plumb, Flux, tw.GetName(), tw.GetNamespace())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("hand %s back to Flux: %w", ref, err))
		}
	}
	return errors.Join(errs...)
}

// resume lets a Flux object run again if it ran before the takeover, and removes the
// takeover's annotation.
func resume(ctx context.Context, c client.Client, flux *unstructured.Unstructured, was string) (string, error) {
	spec := map[string]any{}
	msg := "left suspended, as it was before the takeover"
	if was == wasRunning {
		spec["suspend"] = nil // as Flux objects are written: no suspend field
		msg = "resumed"
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{SuspendAnnotation: nil}},
		"spec":     spec,
	})
	if err := c.Patch(ctx, flux, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
		return "", fmt.Errorf("resume: %w", err)
	}
	return msg, nil
}
