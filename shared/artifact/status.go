package artifact

import (
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// FromStatus reads status.artifact of a producer of any kind, read as unstructured: the
// consumer's side of the contract. A producer without an artifact yet gives an empty one.
func FromStatus(u *unstructured.Unstructured) (meta.Artifact, error) {
	var a meta.Artifact
	raw, ok, err := unstructured.NestedMap(u.Object, "status", "artifact")
	if err != nil {
		return a, fmt.Errorf("status.artifact: %w", err)
	}
	if ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &a); err != nil {
			return a, fmt.Errorf("status.artifact: %w", err)
		}
	}
	return a, nil
}
