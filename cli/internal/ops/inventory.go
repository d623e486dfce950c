package ops

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	ssautils "github.com/fluxcd/pkg/ssa/utils"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Ref names an object that a Plumb object applied.
type Ref struct {
	Group, Version, Kind, Namespace, Name string
}

// String is Kind/namespace/name, or Kind/name without a namespace.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// GVK is the reference's group, version and kind.
func (r Ref) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// ParseID reads an inventory id (namespace_name_group_kind) with the entry's version; ok is
// false when the id has another shape.
func ParseID(id, version string) (Ref, bool) {
	parts := strings.Split(id, "_") // names have no "_": they are DNS subdomains
	if len(parts) != 4 {
		return Ref{}, false
	}
	return Ref{Namespace: parts[0], Name: parts[1], Group: parts[2], Kind: parts[3], Version: version}, true
}

// InventoryID is an object's id in a Kustomization's inventory: namespace_name_group_kind.
func InventoryID(o *unstructured.Unstructured) string {
	return strings.Join([]string{o.GetNamespace(), o.GetName(), o.GroupVersionKind().Group, o.GetKind()}, "_")
}

// SubjectOf turns an inventory id into Kind/namespace/name; an id of another shape stays as it
// is.
func SubjectOf(id string) string {
	if r, ok := ParseID(id, ""); ok {
		return r.String()
	}
	return id
}

// Entry is one entry of a Kustomization's status.inventory.
type Entry struct {
	ID, Version string
}

// Inventory returns the entries of a Kustomization's status.inventory, in their order.
func Inventory(ks *unstructured.Unstructured) []Entry {
	raw, _, _ := unstructured.NestedSlice(ks.Object, "status", "inventory", "entries")
	out := make([]Entry, 0, len(raw))
	for _, e := range raw {
		m, _ := e.(map[string]any)
		id, _ := m["id"].(string)
		v, _ := m["v"].(string)
		out = append(out, Entry{ID: id, Version: v})
	}
	return out
}

// clusterScoped are kinds a chart commonly holds that have no namespace.
var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"CustomResourceDefinition": true, "PriorityClass": true, "StorageClass": true, "PersistentVolume": true,
	"ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true, "IngressClass": true}

// ReleaseObjects lists the objects of a HelmRelease's current release (status.history[0]),
// from the release's Helm storage Secret: base64 of gzipped JSON whose manifest field holds the
// rendered YAML. Reading it needs read access to Secrets in the storage namespace. A
// HelmRelease without history has none.
func ReleaseObjects(ctx context.Context, c client.Reader, hr *unstructured.Unstructured) ([]Ref, error) {
	history, _, _ := unstructured.NestedSlice(hr.Object, "status", "history")
	if len(history) == 0 {
		return nil, nil
	}
	latest, _ := history[0].(map[string]any)
	release, _ := latest["name"].(string)
	releaseNS, _ := latest["namespace"].(string)
	version, _ := latest["version"].(int64)
	storage, _, _ := unstructured.NestedString(hr.Object, "spec", "storageNamespace")
	if storage == "" {
		storage = releaseNS
	}
	s := &corev1.Secret{}
	key := client.ObjectKey{Namespace: storage, Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", release, version)}
	if err := c.Get(ctx, key, s); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(string(s.Data["release"]))
	if err != nil {
		return nil, fmt.Errorf("storage Secret %s: %w", key, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("storage Secret %s: %w", key, err)
	}
	var rel struct {
		Manifest string `json:"manifest"`
	}
	if err := json.NewDecoder(io.LimitReader(zr, 64<<20)).Decode(&rel); err != nil {
		return nil, fmt.Errorf("storage Secret %s: %w", key, err)
	}
	objs, err := ssautils.ReadObjects(strings.NewReader(rel.Manifest))
	if err != nil {
		return nil, err
	}
	out := make([]Ref, 0, len(objs))
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" && !clusterScoped[o.GetKind()] {
			ns = releaseNS
		}
		gvk := o.GroupVersionKind()
		out = append(out, Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: ns, Name: o.GetName()})
	}
	return out, nil
}
