// Package config checks the Kustomize bases of the controllers: each builds, and holds the CRDs,
// RBAC and Deployment an install needs.
package config

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

func TestControllerBasesBuild(t *testing.T) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"source-controller", "apply-controller", "helm-controller", "notification-controller", "image-automation"} {
		t.Run(c, func(t *testing.T) {
			dir := filepath.Join(root, c, "config")
			if _, err := os.Stat(dir); err != nil {
				t.Fatal(err)
			}
			m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
			if err != nil {
				t.Fatalf("kustomize build %s: %v", dir, err)
			}
			kinds := map[string]int{}
			for _, r := range m.Resources() {
				kinds[r.GetKind()]++
				if ns := r.GetNamespace(); ns != "" && ns != "plumb-system" {
					t.Errorf("%s/%s is in namespace %s, want plumb-system", r.GetKind(), r.GetName(), ns)
				}
			}
			for _, k := range []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Role", "RoleBinding", "Deployment"} {
				if kinds[k] == 0 {
					t.Errorf("no %s in the %s base (has %v)", k, c, kinds)
				}
			}
		})
	}
}
