package health

import (
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func object(apiVersion, kind string, generation int64, st map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": "x", "namespace": "ns", "generation": generation},
	}}
	if st != nil {
		u.Object["status"] = st
	}
	return u
}

func ready(observed int64) map[string]any {
	return map[string]any{
		"observedGeneration": observed,
		"conditions":         []any{map[string]any{"type": "Ready", "status": "True", "reason": "Succeeded"}},
	}
}

// A GitOps object that its controller has not yet seen is not healthy, though kstatus calls an
// object without status Current; other kinds keep kstatus's judgement.
func TestComputeUnobservedGitOpsObjects(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    *unstructured.Unstructured
		want status.Status
	}{
		{"plumb kind without status", object("helm.plumb.dev/v1beta1", "HelmRelease", 1, nil), status.InProgressStatus},
		{"flux kind without status", object("helm.toolkit.fluxcd.io/v2", "HelmRelease", 1, nil), status.InProgressStatus},
		{"plumb kind ready at an older generation", object("apply.plumb.dev/v1beta1", "Kustomization", 2, ready(1)), status.InProgressStatus},
		{"plumb kind ready at its generation", object("apply.plumb.dev/v1beta1", "Kustomization", 2, ready(2)), status.CurrentStatus},
		{"other custom resource without status", object("example.com/v1", "Widget", 1, nil), status.CurrentStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Compute(tc.u)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want {
				t.Errorf("status %s (%s), want %s", res.Status, res.Message, tc.want)
			}
		})
	}
}
