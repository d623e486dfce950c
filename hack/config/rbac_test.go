package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// TestRBACGrantsNothingOnEverything: no controller's generated ClusterRole names every group or
// every resource, except the two appliers, which apply what Git holds (and act through
// impersonation of a tenant's ServiceAccount when tenancy is on, docs/security.md).
func TestRBACGrantsNothingOnEverything(t *testing.T) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		t.Fatal(err)
	}
	appliers := []string{"apply-controller", "helm-controller"}
	for _, c := range []string{"source-controller", "apply-controller", "helm-controller", "notification-controller", "image-automation"} {
		t.Run(c, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, c, "config", "rbac", "role.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var role rbacv1.ClusterRole
			if err := yaml.Unmarshal(data, &role); err != nil {
				t.Fatal(err)
			}
			if len(role.Rules) == 0 {
				t.Fatal("no rules read from role.yaml")
			}
			for _, r := range role.Rules {
				wild := slices.Contains(r.APIGroups, "*") || slices.Contains(r.Resources, "*")
				if wild && !slices.Contains(appliers, c) {
					t.Errorf("rule %v grants %v on every group or resource", r.Resources, r.Verbs)
				}
			}
		})
	}
}
