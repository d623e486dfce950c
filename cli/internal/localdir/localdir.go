// Package localdir loads a folder on this machine as apply-controller loads a source's
// artifact, for the commands that build what a controller would build (plumb diff --path, the
// takeovers' dry runs).
package localdir

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kustomize"
)

// Load packs dir (without .git, regular files only) as an artifact and loads it for building.
func Load(dir string) (*kustomize.Tree, error) {
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return w.File(filepath.ToSlash(rel), false, int64(len(data)), bytes.NewReader(data))
	})
	if err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return kustomize.Load(&buf, artifact.DefaultLimits)
}
