package takeover

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func entry(manager string, op metav1.ManagedFieldsOperationType, fields string) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
}

func TestMove(t *testing.T) {
	const fluxFields = `{"f:data":{"f:a":{}},"f:metadata":{"f:labels":{"f:kustomize.toolkit.fluxcd.io/name":{},"f:kustomize.toolkit.fluxcd.io/namespace":{},"f:team":{}}}}`
	const plumbFields = `{"f:data":{"f:a":{}},"f:metadata":{"f:labels":{"f:apply.plumb.dev/name":{},"f:apply.plumb.dev/namespace":{},"f:team":{}}}}`
	fluxLabels := map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "ns", "team": "a"}
	plumbLabels := map[string]string{"apply.plumb.dev/name": "apps", "apply.plumb.dev/namespace": "ns", "team": "a"}
	hpa := entry("hpa", metav1.ManagedFieldsOperationUpdate, `{"f:spec":{"f:replicas":{}}}`)
	for _, tc := range []struct {
		name    string
		labels  map[string]string
		entries []metav1.ManagedFieldsEntry
		want    moved
		changed bool
		err     string
	}{
		{
			name:    "Flux's manager and labels become Plumb's, others stay",
			labels:  fluxLabels,
			entries: []metav1.ManagedFieldsEntry{entry("kustomize-controller", metav1.ManagedFieldsOperationApply, fluxFields), hpa},
			want:    moved{Labels: plumbLabels, ManagedFields: []metav1.ManagedFieldsEntry{entry("apply-controller", metav1.ManagedFieldsOperationApply, plumbFields), hpa}},
			changed: true,
		},
		{
			name:    "done already: nothing to move",
			labels:  plumbLabels,
			entries: []metav1.ManagedFieldsEntry{entry("apply-controller", metav1.ManagedFieldsOperationApply, plumbFields)},
			want:    moved{Labels: plumbLabels, ManagedFields: []metav1.ManagedFieldsEntry{entry("apply-controller", metav1.ManagedFieldsOperationApply, plumbFields)}},
		},
		{
			name:   "Flux applied again after a first takeover: the field sets are joined",
			labels: plumbLabels,
			entries: []metav1.ManagedFieldsEntry{entry("apply-controller", metav1.ManagedFieldsOperationApply, plumbFields),
				entry("kustomize-controller", metav1.ManagedFieldsOperationApply, `{"f:data":{"f:b":{}}}`)},
			want: moved{Labels: plumbLabels, ManagedFields: []metav1.ManagedFieldsEntry{entry("apply-controller", metav1.ManagedFieldsOperationApply,
				`{"f:data":{"f:a":{},"f:b":{}},"f:metadata":{"f:labels":{"f:apply.plumb.dev/name":{},"f:apply.plumb.dev/namespace":{},"f:team":{}}}}`)}},
			changed: true,
		},
		{
			name:   "the CLI's own manager left by a stopped run goes",
			labels: plumbLabels,
			entries: []metav1.ManagedFieldsEntry{entry("apply-controller", metav1.ManagedFieldsOperationApply, plumbFields),
				entry(FieldOwner, metav1.ManagedFieldsOperationUpdate, `{"f:metadata":{"f:labels":{"f:apply.plumb.dev/name":{}}}}`)},
			want:    moved{Labels: plumbLabels, ManagedFields: []metav1.ManagedFieldsEntry{entry("apply-controller", metav1.ManagedFieldsOperationApply, plumbFields)}},
			changed: true,
		},
		{
			name:   "another Kustomization's object is refused",
			labels: map[string]string{"kustomize.toolkit.fluxcd.io/name": "other", "kustomize.toolkit.fluxcd.io/namespace": "ns"},
			err:    "its label kustomize.toolkit.fluxcd.io/name=other, kustomize.toolkit.fluxcd.io/namespace=ns names another Kustomization; left as it is",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &metav1.ObjectMeta{Labels: tc.labels, ManagedFields: tc.entries}
			got, changed, err := move(obj, Flux, Plumb, "apps", "ns")
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.changed {
				t.Errorf("changed %v, want %v", changed, tc.changed)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestTwin(t *testing.T) {
	k := Kinds[4] // Kustomization
	flux := map[string]any{"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
		"metadata": map[string]any{"name": "apps", "namespace": "ns",
			"labels":      map[string]any{"kustomize.toolkit.fluxcd.io/name": "flux-system", "team": "a", "toolkit.fluxcd.io/tenant": "dev"},
			"annotations": map[string]any{SuspendAnnotation: wasRunning, "reconcile.fluxcd.io/requestedAt": "1", "note": "kept", "kustomize.toolkit.fluxcd.io/prune": "disabled"}},
		"spec": map[string]any{"suspend": true, "path": "./apps",
			"sourceRef": map[string]any{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "repo"},
			"dependsOn": []any{map[string]any{"name": "infra"}}}}
	got := twin(k, unstructuredOf(flux), false).Object
	want := map[string]any{"apiVersion": "apply.plumb.dev/v1beta1", "kind": "Kustomization",
		"metadata": map[string]any{"name": "apps", "namespace": "ns",
			"labels":      map[string]any{"team": "a", "toolkit.fluxcd.io/tenant": "dev", MigratedFromLabel: "flux"},
			"annotations": map[string]any{"note": "kept", "kustomize.toolkit.fluxcd.io/prune": "disabled"}},
		"spec": map[string]any{"path": "./apps",
			"sourceRef": map[string]any{"apiVersion": "source.plumb.dev/v1beta1", "kind": "GitRepository", "name": "repo"},
			"dependsOn": []any{map[string]any{"name": "infra"}}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// A HelmRelease twin with a targetNamespace keeps Flux's storage namespace, its own namespace,
// so that helm-controller finds the release Flux made.
func TestTwinHelmReleaseStorage(t *testing.T) {
	var k Kind
	for _, c := range Kinds {
		if c.Kind == "HelmRelease" {
			k = c
		}
	}
	flux := map[string]any{"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
		"metadata": map[string]any{"name": "web", "namespace": "apps"},
		"spec":     map[string]any{"targetNamespace": "web"}}
	spec := twin(k, unstructuredOf(flux), false).Object["spec"].(map[string]any)
	if spec["storageNamespace"] != "apps" {
		t.Errorf("storageNamespace %v, want apps (Flux's default)", spec["storageNamespace"])
	}
	flux["spec"] = map[string]any{"targetNamespace": "web", "storageNamespace": "db"}
	spec = twin(k, unstructuredOf(flux), false).Object["spec"].(map[string]any)
	if spec["storageNamespace"] != "db" {
		t.Errorf("storageNamespace %v, want db (as set)", spec["storageNamespace"])
	}
}

func unstructuredOf(m map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: m}
}
