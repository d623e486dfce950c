package takeover

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	// MigratedFromLabel marks a Plumb object made by a takeover, with the tool it was taken
	// from: rollback deletes only objects with it.
	MigratedFromLabel = "plumb.dev/migrated-from"
	// SuspendAnnotation on a Flux object records whether it was suspended before the takeover,
	// so that rollback restores exactly that.
	SuspendAnnotation = "plumb.dev/migrated-suspend"
	wasSuspended      = "was-suspended"
	wasRunning        = "was-running"
)

// twin is the Plumb object of a Flux object: same name, namespace, labels, annotations and
// spec, the apiVersions of its references moved to Plumb's groups, suspended as asked.
func twin(k Kind, flux *unstructured.Unstructured, suspend bool) *unstructured.Unstructured {
	spec, _, _ := unstructured.NestedMap(flux.Object, "spec")
	spec = runtime.DeepCopyJSON(spec)
	if spec == nil {
		spec = map[string]any{}
	}
	rewriteVersions(spec)
	if k.Kind == "HelmRelease" && spec["targetNamespace"] != nil && spec["storageNamespace"] == nil {
		// Flux keeps Helm's storage in the HelmRelease's namespace, Plumb in the target
		// namespace unless told: the twin is told, so that it adopts Flux's release.
		spec["storageNamespace"] = flux.GetNamespace()
	}
	if suspend {
		spec["suspend"] = true
	} else {
		delete(spec, "suspend")
	}
	t := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	t.SetGroupVersionKind(k.PlumbGVK())
	t.SetName(flux.GetName())
	t.SetNamespace(flux.GetNamespace())
	labels := keep(flux.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	labels[MigratedFromLabel] = "flux"
	t.SetLabels(labels)
	t.SetAnnotations(keep(flux.GetAnnotations()))
	return t
}

// fluxBookkeeping are the labels Flux's controllers put on what they apply: the owner's name
// and namespace. Other Flux keys are the user's (toolkit.fluxcd.io/tenant, or the per-object
// kustomize.toolkit.fluxcd.io/prune that Plumb honours) and stay on the twin.
var fluxBookkeeping = map[string]bool{
	"kustomize.toolkit.fluxcd.io/name": true, "kustomize.toolkit.fluxcd.io/namespace": true,
	"helm.toolkit.fluxcd.io/name": true, "helm.toolkit.fluxcd.io/namespace": true,
}

// keep drops Flux's own and kubectl's bookkeeping from labels or annotations: the parent's
// owner labels, reconcile requests, the takeover's annotation, kubectl's last applied state.
func keep(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if fluxBookkeeping[k] || strings.HasPrefix(k, "reconcile.fluxcd.io/") || k == SuspendAnnotation || k == "kubectl.kubernetes.io/last-applied-configuration" {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// rewriteVersions moves every apiVersion field naming a Flux group (sourceRef, chartRef,
// dependsOn, eventSources, resources ...) to Plumb's group.
func rewriteVersions(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "apiVersion" {
				group, _, _ := strings.Cut(s, "/")
				if pg, ok := fluxGroups[group]; ok {
					v[k] = pg + "/" + PlumbVersion
				}
				continue
			}
			rewriteVersions(x)
		}
	case []any:
		for _, x := range v {
			rewriteVersions(x)
		}
	}
}
