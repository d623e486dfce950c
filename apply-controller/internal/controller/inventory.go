package controller

import (
	"sort"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

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
