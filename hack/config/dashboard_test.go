package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// TestDashboardBase: cli/config/dashboard builds; read-only, its ClusterRole reads every Plumb
// kind and Secrets never, with no wildcard; the actions component adds impersonation and
// --allow-actions, and nothing else.
func TestDashboardBase(t *testing.T) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(root, "cli", "config", "dashboard")
	m := build(t, filesys.MakeFsOnDisk(), base)
	var role rbacv1.ClusterRole
	var deploy appsv1.Deployment
	for _, r := range m.Resources() {
		if ns := r.GetNamespace(); ns != "" && ns != "plumb-system" {
			t.Errorf("%s/%s is in namespace %s, want plumb-system", r.GetKind(), r.GetName(), ns)
		}
		switch r.GetKind() {
		case "ClusterRole":
			decode(t, []byte(r.MustYaml()), &role)
		case "Deployment":
			decode(t, []byte(r.MustYaml()), &deploy)
		}
	}
	if len(role.Rules) == 0 || len(deploy.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("the base has no ClusterRole or no Deployment of one container")
	}
	readable := map[string]bool{}
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("read-only ClusterRole grants %s on %v", v, r.Resources)
			}
		}
		if slices.Contains(r.APIGroups, "*") || slices.Contains(r.Resources, "*") {
			t.Errorf("rule %v grants %v on every group or resource", r.Resources, r.Verbs)
		}
		if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "secrets") {
			t.Error("the dashboard may read Secrets")
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if slices.Contains(r.Verbs, "watch") {
					readable[g+"/"+res] = true
				}
			}
		}
	}
	for _, plural := range plumbResources(t) {
		if !readable[plural] {
			t.Errorf("the dashboard cannot watch %s", plural)
		}
	}
	if !readable["/events"] {
		t.Error("the dashboard cannot watch Events")
	}
	args := deploy.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--in-cluster") || slices.Contains(args, "--allow-actions") {
		t.Errorf("the base runs read-only in the cluster; args %v", args)
	}

	// The actions component, as an overlay uses it.
	fs := filesys.MakeFsInMemory()
	if err := copyDir(base, "/base", fs); err != nil {
		t.Fatal(err)
	}
	if err := fs.WriteFile("/overlay/kustomization.yaml", []byte("resources: [../base]\ncomponents: [../base/actions]\n")); err != nil {
		t.Fatal(err)
	}
	m = build(t, fs, "/overlay")
	impersonates := false
	for _, r := range m.Resources() {
		switch r.GetKind() {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			decode(t, []byte(r.MustYaml()), &cr)
			for _, rule := range cr.Rules {
				impersonates = impersonates || slices.Contains(rule.Verbs, "impersonate")
			}
		case "Deployment":
			decode(t, []byte(r.MustYaml()), &deploy)
		}
	}
	if !impersonates {
		t.Error("the actions component grants no impersonation")
	}
	if args := deploy.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--allow-actions") {
		t.Errorf("with actions, args %v lack --allow-actions", args)
	}
}

func build(t *testing.T, fs filesys.FileSystem, dir string) resmap.ResMap {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return m
}

func decode(t *testing.T, data []byte, into runtime.Object) {
	t.Helper()
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatal(err)
	}
}

// plumbResources are group/plural of every kind of the workspace's CRDs.
func plumbResources(t *testing.T) []string {
	dirs, err := testenv.WorkspaceCRDDirs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.yaml"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var crd apiextensionsv1.CustomResourceDefinition
			decode(t, data, &crd)
			if strings.HasSuffix(crd.Spec.Group, ".plumb.dev") {
				out = append(out, crd.Spec.Group+"/"+crd.Spec.Names.Plural)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no CRDs found")
	}
	return out
}

// copyDir copies a folder of the disk into an in-memory file system.
func copyDir(from, to string, fs filesys.FileSystem) error {
	return filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return fs.WriteFile(filepath.Join(to, rel), data)
	})
}
