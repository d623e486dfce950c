package refwatch

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Dependency is a spec.dependsOn entry with its defaults filled in.
type Dependency struct {
	GVK schema.GroupVersionKind
	Key types.NamespacedName
	// Ready, when set, decides instead of the Ready condition whether the dependency is ready
	// (a readyExpr); an error counts as not ready.
	Ready func(ctx context.Context, dep *unstructured.Unstructured) (bool, error)
}

// String names the dependency as messages do: "Kustomization apps/infra".
func (d Dependency) String() string { return fmt.Sprintf("%s %s", d.GVK.Kind, d.Key) }

// IndexKey is the dependency's value in a field index (see Key).
func (d Dependency) IndexKey() string { return Key(d.GVK.Kind, d.Key.Namespace, d.Key.Name) }

// IndexKeys are the values of the dependencies in a field index.
func IndexKeys(deps []Dependency) []string {
	keys := make([]string, 0, len(deps))
	for _, d := range deps {
		keys = append(keys, d.IndexKey())
	}
	return keys
}

// ResolveDependency fills in a dependsOn entry's defaults: the depending object's own group,
// version and kind (own), and its namespace. An apiVersion that does not parse is an error.
func ResolveDependency(own schema.GroupVersionKind, namespace, apiVersion, kind, depNamespace, name string) (Dependency, error) {
	gv := own.GroupVersion()
	if apiVersion != "" {
		var err error
		if gv, err = schema.ParseGroupVersion(apiVersion); err != nil {
			return Dependency{GVK: schema.GroupVersionKind{Kind: kind}}, fmt.Errorf("spec.dependsOn apiVersion %q: %w", apiVersion, err)
		}
	}
	if kind == "" {
		kind = own.Kind
	}
	if depNamespace == "" {
		depNamespace = namespace
	}
	return Dependency{GVK: gv.WithKind(kind), Key: types.NamespacedName{Namespace: depNamespace, Name: name}}, nil
}

// SameKind returns the keys of the dependencies of kind own, the ones a dependency cycle can
// run through.
func SameKind(own schema.GroupVersionKind, deps []Dependency) []types.NamespacedName {
	var out []types.NamespacedName
	for _, d := range deps {
		if d.GVK.GroupKind() == own.GroupKind() {
			out = append(out, d.Key)
		}
	}
	return out
}

// NotReady reads each dependency through the watcher (so that its changes reconcile the
// dependent) and describes the first that is missing, unreadable or not Ready at its
// generation (or whose Ready function says no), with one message for all, so that it tells
// nobody whether an object exists: "dependency Kustomization apps/infra is not ready or not
// found". It returns "" when
// all are ready, and an error when one could not be read (one wrapping ErrKindRefused for a
// kind that did not opt in).
func (w *Watcher) NotReady(ctx context.Context, c client.Reader, deps []Dependency) (string, error) {
	for _, d := range deps {
		u, err := w.Get(ctx, c, d.GVK, d.Key)
		switch {
		case err != nil:
			return "", fmt.Errorf("dependency %s: %w", d, err)
		case u == nil:
			return NotReadyOrNotFound("dependency " + d.String()), nil
		case d.Ready != nil:
			if ok, err := d.Ready(ctx, u); err != nil || !ok {
				return NotReadyOrNotFound("dependency "+d.String()) + " (by its readyExpr)", nil
			}
		case !ReadyAtGeneration(u):
			return NotReadyOrNotFound("dependency " + d.String()), nil
		}
	}
	return "", nil
}

// NotReadyOrNotFound is the message for a referred object that is missing, unreadable or not
// ready: "<what> is not ready or not found".
func NotReadyOrNotFound(what string) string { return what + " is not ready or not found" }
