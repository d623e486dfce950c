package config

import (
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// TestShardingExample builds the overlay of docs/scaling.md and checks that its three
// apply-controllers split the Kustomizations between them: each Kustomization, labelled for a
// shard or for none, is reconciled by exactly one, and no Deployment selects another's pods.
func TestShardingExample(t *testing.T) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "docs", "examples", "sharding")
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var deployments []appsv1.Deployment
	for _, r := range m.Resources() {
		if r.GetKind() != "Deployment" {
			continue
		}
		obj, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &d); err != nil {
			t.Fatal(err)
		}
		if d.Namespace != "plumb-system" {
			t.Errorf("Deployment %s is in namespace %q, want plumb-system", d.Name, d.Namespace)
		}
		deployments = append(deployments, d)
	}
	if len(deployments) != 3 {
		t.Fatalf("%d Deployments, want 3 (the main apply-controller and two shards)", len(deployments))
	}

	shards := map[string]labels.Selector{}
	for _, d := range deployments {
		var flags []string
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if v, ok := strings.CutPrefix(a, "--watch-label-selector="); ok {
				flags = append(flags, v)
			}
		}
		if len(flags) != 1 {
			t.Fatalf("Deployment %s has %d --watch-label-selector flags, want 1: %v", d.Name, len(flags), flags)
		}
		sel, err := labels.Parse(flags[0])
		if err != nil {
			t.Fatalf("Deployment %s: --watch-label-selector=%s: %v", d.Name, flags[0], err)
		}
		shards[d.Name] = sel
		if d.Spec.Template.Spec.ServiceAccountName != "apply-controller" {
			t.Errorf("Deployment %s runs as %q, want the apply-controller ServiceAccount the RBAC binds", d.Name, d.Spec.Template.Spec.ServiceAccountName)
		}
		pods, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range deployments {
			if other.Name != d.Name && pods.Matches(labels.Set(other.Spec.Template.Labels)) {
				t.Errorf("Deployment %s selects the pods of %s", d.Name, other.Name)
			}
		}
	}

	for _, tc := range []struct {
		name   string
		labels labels.Set
		want   string
	}{
		{"no shard label", nil, "apply-controller"},
		{"other labels only", labels.Set{"team": "shop"}, "apply-controller"},
		{"shard1", labels.Set{"sharding.fluxcd.io/key": "shard1"}, "apply-controller-shard1"},
		{"shard2", labels.Set{"sharding.fluxcd.io/key": "shard2"}, "apply-controller-shard2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var by []string
			for name, sel := range shards {
				if sel.Matches(tc.labels) {
					by = append(by, name)
				}
			}
			if len(by) != 1 || by[0] != tc.want {
				t.Errorf("a Kustomization labelled %v is reconciled by %v, want %s alone", tc.labels, by, tc.want)
			}
		})
	}
	// A key no Deployment serves is reconciled by none: docs/scaling.md says so.
	for name, sel := range shards {
		if sel.Matches(labels.Set{"sharding.fluxcd.io/key": "shard3"}) {
			t.Errorf("%s reconciles Kustomizations of a shard that has no Deployment", name)
		}
	}
}
