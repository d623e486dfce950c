// Command manifests renders each controller's Kustomize base into the plumb CLI's embedded copy
// (cli/internal/install/manifests/<component>.yaml), so that `plumb install` needs no checkout.
// `make generate` runs it; CI fails when the copy is stale.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

var components = []string{"source-controller", "apply-controller", "helm-controller", "notification-controller", "image-automation"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "manifests:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		return err
	}
	out := filepath.Join(root, "cli", "internal", "install", "manifests")
	for _, c := range components {
		m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, c, "config"))
		if err != nil {
			return fmt.Errorf("kustomize build %s/config: %w", c, err)
		}
		y, err := m.AsYaml()
		if err != nil {
			return err
		}
		header := fmt.Sprintf("# %s: generated from %s/config by hack/manifests (make generate); do not edit.\n", c, c)
		if err := os.WriteFile(filepath.Join(out, c+".yaml"), append([]byte(header), y...), 0o644); err != nil {
			return err
		}
	}
	return nil
}
