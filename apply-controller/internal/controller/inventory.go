package controller

import (
	"context"
	"fmt"
	"sort"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/status"
)

// recordAdded writes, before an apply, the objects it may create that the inventory lacks into
// the inventory (with Reconciling=True): a controller killed mid-apply then leaves every object
// it created owned by the inventory, to be pruned should the next revision drop it. Without
// this, an object created by an interrupted apply and gone from Git before the restart was
// left in the cluster, owned by nothing (found by hack/chaos, TestKillApplyMidApply). Only with
// spec.prune, which alone deletes; the end of the run writes the exact inventory, and a failed
// apply the last one with what it did apply.
func (r *KustomizationReconciler) recordAdded(ctx context.Context, obj *applyv1.Kustomization, objs []*unstructured.Unstructured, revision string, st *runInfo) error {
	if !obj.Spec.Prune {
		return nil
	}
	added := added(obj.Status.Inventory, objs)
	if len(added.Entries) == 0 {
		return nil
	}
	obj.Status.Inventory = mergeInventories(obj.Status.Inventory, added)
	markReconciling(obj, "applying revision %s: %d objects to add", revision, len(added.Entries))
	if err := st.patcher.Patch(ctx, obj, r.ControllerName); err != nil {
		return status.Fail(r.Events, obj, revision, applyv1.ApplyFailedReason, fmt.Errorf("recording the objects to add in the inventory: %w", err))
	}
	return nil
}

// added is the inventory of the objects of objs that inv lacks.
func added(inv *applyv1.Inventory, objs []*unstructured.Unstructured) *applyv1.Inventory {
	have := map[string]bool{}
	if inv != nil {
		for _, e := range inv.Entries {
			have[e.ID] = true
		}
	}
	out := &applyv1.Inventory{}
	for _, o := range objs {
		id := object.UnstructuredToObjMetadata(o).String()
		if !have[id] {
			have[id] = true
			out.Entries = append(out.Entries, applyv1.InventoryEntry{ID: id, Version: o.GroupVersionKind().Version})
		}
	}
	return out
}

// inventoryOf returns the inventory of the objects of a change set, sorted by ID. Skipped objects
// (ssa: IfNotPresent when present, ssa: Ignore) stay in it: they are still in the build, and
// leaving them out would prune them.
func inventoryOf(cs *ssa.ChangeSet) *applyv1.Inventory {
	inv := &applyv1.Inventory{}
	for _, e := range cs.Entries {
		// ssa's GroupVersion holds the version alone.
		inv.Entries = append(inv.Entries, applyv1.InventoryEntry{ID: e.ObjMetadata.String(), Version: e.GroupVersion})
	}
	sort.Slice(inv.Entries, func(i, j int) bool { return inv.Entries[i].ID < inv.Entries[j].ID })
	return inv
}

// stale returns the objects of old that are not in current, as unstructured stubs to delete.
func stale(old, current *applyv1.Inventory) ([]*unstructured.Unstructured, error) {
	if old == nil {
		return nil, nil
	}
	keep := map[string]bool{}
	if current != nil {
		for _, e := range current.Entries {
			keep[e.ID] = true
		}
	}
	var out []*unstructured.Unstructured
	for _, e := range old.Entries {
		if keep[e.ID] {
			continue
		}
		u, err := stub(e)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// objects returns stubs of every object of the inventory.
func objects(inv *applyv1.Inventory) ([]*unstructured.Unstructured, error) {
	return stale(inv, nil)
}

func stub(e applyv1.InventoryEntry) (*unstructured.Unstructured, error) {
	m, err := object.ParseObjMetadata(e.ID)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(m.GroupKind.WithVersion(e.Version))
	u.SetNamespace(m.Namespace)
	u.SetName(m.Name)
	return u, nil
}
