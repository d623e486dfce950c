package takeover

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Owner is who applies an object: a field manager and the group of its owner labels
// (<group>/name, <group>/namespace), as fluxcd/pkg/ssa sets them.
type Owner struct {
	Manager string
	Group   string
}

var (
	// Flux is Flux's kustomize-controller.
	Flux = Owner{Manager: "kustomize-controller", Group: "kustomize.toolkit.fluxcd.io"}
	// Plumb is Plumb's apply-controller.
	Plumb = Owner{Manager: "apply-controller", Group: "apply.plumb.dev"}
)

// FieldOwner is the field manager of the CLI's own writes.
const FieldOwner = "plumb-migrate"

// moved is an object's metadata after moving it from one owner to another.
type moved struct {
	Labels map[string]string
	// Annotations are written when not nil.
	Annotations   map[string]string
	ManagedFields []metav1.ManagedFieldsEntry
}

// move hands an object applied by from for the Kustomization name/namespace over to to: the
// field managers of from become to's (with the label keys inside their field sets renamed, so
// that to owns its labels), and from's owner labels become to's. It returns false when nothing
// is left to move, and an error when the object belongs to another Kustomization.
func move(obj metav1.Object, from, to Owner, name, namespace string) (moved, bool, error) {
	labels := obj.GetLabels()
	fromName, fromNS := from.Group+"/name", from.Group+"/namespace"
	toName, toNS := to.Group+"/name", to.Group+"/namespace"
	if n, ok := labels[fromName]; ok && (n != name || labels[fromNS] != namespace) {
		return moved{}, false, fmt.Errorf("its label %s=%s, %s=%s names another Kustomization; left as it is", fromName, n, fromNS, labels[fromNS])
	}
	m := moved{Labels: maps.Clone(labels)}
	changed := false
	if _, ok := labels[fromName]; ok {
		delete(m.Labels, fromName)
		delete(m.Labels, fromNS)
		m.Labels[toName], m.Labels[toNS] = name, namespace
		changed = true
	}
	renames := map[string]string{"f:" + fromName: "f:" + toName, "f:" + fromNS: "f:" + toNS}
	for _, e := range obj.GetManagedFields() {
		if e.Manager == FieldOwner {
			// Left by a takeover stopped between its two patches.
			changed = true
			continue
		}
		if e.Manager != from.Manager {
			m.ManagedFields = append(m.ManagedFields, e)
			continue
		}
		changed = true
		e.Manager = to.Manager
		if e.FieldsV1 != nil {
			f, err := renameLabels(e.FieldsV1.GetRawBytes(), renames)
			if err != nil {
				return moved{}, false, fmt.Errorf("managed fields of %s: %w", from.Manager, err)
			}
			e.FieldsV1 = metav1.NewFieldsV1(string(f))
		}
		m.ManagedFields = mergeEntry(m.ManagedFields, e)
	}
	return m, changed, nil
}

// renameLabels renames label keys in a fieldsV1 set (f:metadata → f:labels → f:<key>).
func renameLabels(raw []byte, renames map[string]string) ([]byte, error) {
	var set map[string]any
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	if md, ok := set["f:metadata"].(map[string]any); ok {
		if labels, ok := md["f:labels"].(map[string]any); ok {
			for old, n := range renames {
				if v, ok := labels[old]; ok {
					delete(labels, old)
					labels[n] = v
				}
			}
		}
	}
	return json.Marshal(set)
}

// mergeEntry adds e to entries, joining it with an entry of the same manager, operation,
// version and subresource: the API server takes one entry per such tuple. That entry exists
// when a takeover is run again after Flux applied once more.
func mergeEntry(entries []metav1.ManagedFieldsEntry, e metav1.ManagedFieldsEntry) []metav1.ManagedFieldsEntry {
	for i, x := range entries {
		if x.Manager != e.Manager || x.Operation != e.Operation || x.APIVersion != e.APIVersion || x.Subresource != e.Subresource {
			continue
		}
		if x.FieldsV1 != nil && e.FieldsV1 != nil {
			var a, b map[string]any
			if json.Unmarshal(x.FieldsV1.GetRawBytes(), &a) == nil && json.Unmarshal(e.FieldsV1.GetRawBytes(), &b) == nil {
				if raw, err := json.Marshal(union(a, b)); err == nil {
					entries[i].FieldsV1 = metav1.NewFieldsV1(string(raw))
				}
			}
		} else if x.FieldsV1 == nil {
			entries[i].FieldsV1 = e.FieldsV1
		}
		if e.Time != nil && (x.Time == nil || x.Time.Before(e.Time)) {
			entries[i].Time = e.Time
		}
		return entries
	}
	return append(entries, e)
}

// union joins two field sets.
func union(a, b map[string]any) map[string]any {
	for k, bv := range b {
		am, aok := a[k].(map[string]any)
		bm, bok := bv.(map[string]any)
		if aok && bok {
			a[k] = union(am, bm)
		} else if _, ok := a[k]; !ok {
			a[k] = bv
		}
	}
	return a
}

// ObjectRef is an object of an inventory.
type ObjectRef struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
}

func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.GVK.Kind + "/" + r.Name
	}
	return r.GVK.Kind + "/" + r.Namespace + "/" + r.Name
}

// parseInventoryID reads an inventory entry: id <namespace>_<name>_<group>_<kind>, version v.
func parseInventoryID(id, version string) (ObjectRef, error) {
	parts := strings.Split(id, "_")
	if len(parts) != 4 || parts[1] == "" || parts[3] == "" {
		return ObjectRef{}, fmt.Errorf("inventory entry %q is not <namespace>_<name>_<group>_<kind>", id)
	}
	return ObjectRef{GVK: schema.GroupVersionKind{Group: parts[2], Version: version, Kind: parts[3]}, Namespace: parts[0], Name: parts[1]}, nil
}

// adopt moves one object from one owner to another in one patch, which fails if the object
// changed since it was read. It returns whether the object was changed; a missing object is not
// an error (Flux's inventory may list what was deleted since).
func adopt(ctx context.Context, c client.Client, ref ObjectRef, from, to Owner, name, namespace string) (bool, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(ref.GVK)
	if err := c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	m, changed, err := move(obj, from, to, name, namespace)
	if err != nil || !changed {
		return false, err
	}
	return true, writeMoved(ctx, c, obj, m)
}

// writeMoved writes an object's new labels, annotations and field managers in two patches.
func writeMoved(ctx context.Context, c client.Client, obj *metav1.PartialObjectMetadata, m moved) error {
	// The API server gives the label change of the first patch to the patch's own field
	// manager (an Update takes the fields it changes); the second, which changes no field,
	// sets the managers as they must be. Each fails if the object changed in between.
	labels := m.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	first := []map[string]any{{"op": "add", "path": "/metadata/labels", "value": labels}}
	if m.Annotations != nil {
		first = append(first, map[string]any{"op": "add", "path": "/metadata/annotations", "value": m.Annotations})
	}
	for _, ops := range [][]map[string]any{
		append(first, map[string]any{"op": "replace", "path": "/metadata/managedFields", "value": m.ManagedFields}),
		{{"op": "replace", "path": "/metadata/managedFields", "value": m.ManagedFields}},
	} {
		ops = append([]map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": obj.ResourceVersion}}, ops...)
		patch, err := json.Marshal(ops)
		if err != nil {
			return err
		}
		if err := c.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return err
		}
	}
	return nil
}
