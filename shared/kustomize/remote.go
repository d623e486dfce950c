package kustomize

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/redact"
)

// Remote references. Kustomize reads some references of a kustomization from outside the
// artifact: a Git URL in resources or components (github.com/org/repo//path?ref=v1,
// https://host/repo.git//path, git@host:repo) is cloned with the git program into a temporary
// folder on disk; an http(s) URL of a file is downloaded. A file:// URL would clone a repository
// from the controller's own disk. Before a build, the kustomizations it reaches inside the
// artifact are read for such references: file:// is always refused, the others when remote
// bases are off. A build that uses them reads the clones through the disk and is never cached.

// refClass says where kustomize reads a reference from.
type refClass int

const (
	refLocal   refClass = iota // the artifact
	refNetwork                 // a Git server or an http(s) URL
	refDisk                    // a file:// repository on the controller's disk
)

// classify mirrors kustomize's test for a Git or http(s) URL: a scheme, a user@ of the SCP-like
// syntax, or a github.com host without scheme.
func classify(ref string) refClass {
	r := strings.ToLower(strings.TrimSpace(ref))
	r = strings.TrimPrefix(r, "git::")
	switch {
	case strings.HasPrefix(r, "file://"):
		return refDisk
	case strings.Contains(r, "://"):
		return refNetwork
	case strings.HasPrefix(r, "github.com/"), strings.HasPrefix(r, "github.com:"):
		return refNetwork
	}
	first, _, _ := strings.Cut(r, "/")
	if strings.Contains(first, "@") {
		return refNetwork
	}
	return refLocal
}

// foreignRef is a reference of a kustomization in the artifact to something outside it.
type foreignRef struct {
	file  string // the kustomization, as a path of the artifact
	ref   string
	class refClass
}

func (f foreignRef) String() string {
	return fmt.Sprintf("%s refers to %s", f.file, redact.URL(f.ref))
}

// foreignRefs reads the kustomization in dir and those it reaches through local folders of
// resources, components, generators, transformers and validators, and returns their remote
// and file:// references, in a stable order. Files it cannot parse are left to kustomize,
// which reports them with more context.
func foreignRefs(fs filesys.FileSystem, dir string) []foreignRef {
	var out []foreignRef
	seen := map[string]bool{}
	queue := []string{dir}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		file := kustomizationFile(fs, d)
		if file == "" {
			continue
		}
		data, err := fs.ReadFile(file)
		if err != nil {
			continue
		}
		var k kustomization
		if err := yaml.Unmarshal(data, &k); err != nil {
			continue
		}
		folders, files := references(&k)
		for _, ref := range append(folders, files...) {
			if c := classify(ref); c != refLocal {
				out = append(out, foreignRef{file: strings.TrimPrefix(file, srcRoot+"/"), ref: ref, class: c})
			}
		}
		for _, ref := range folders {
			if classify(ref) != refLocal {
				continue
			}
			p := path.Join(d, ref)
			if (p == srcRoot || strings.HasPrefix(p, srcRoot+"/")) && fs.IsDir(p) {
				queue = append(queue, p)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].file < out[j].file })
	return out
}

func kustomizationFile(fs filesys.FileSystem, dir string) string {
	for _, f := range kustomizationFiles {
		if p := path.Join(dir, f); fs.Exists(p) {
			return p
		}
	}
	return ""
}

// kustomization is a kustomization file with the deprecated fields kustomize still reads.
type kustomization struct {
	kustypes.Kustomization `json:",inline"`
	OldBases               []string         `json:"bases,omitempty"`
	OldStrategicMerge      []string         `json:"patchesStrategicMerge,omitempty"`
	OldJSON6902            []kustypes.Patch `json:"patchesJson6902,omitempty"`
}

// references returns a kustomization's references that may be folders (and so kustomizations),
// and those that can only be files.
func references(k *kustomization) (folders, files []string) {
	folders = append(folders, k.Resources...)
	folders = append(folders, k.OldBases...)
	folders = append(folders, k.Components...)
	folders = append(folders, k.Generators...)
	folders = append(folders, k.Transformers...)
	folders = append(folders, k.Validators...)
	files = append(files, k.Crds...)
	files = append(files, k.Configurations...)
	if p := k.OpenAPI["path"]; p != "" {
		files = append(files, p)
	}
	for _, p := range k.OldStrategicMerge {
		if !strings.Contains(p, "\n") { // a path, not an inline patch
			files = append(files, p)
		}
	}
	for _, p := range append(append([]kustypes.Patch{}, k.Patches...), k.OldJSON6902...) {
		if p.Path != "" {
			files = append(files, p.Path)
		}
	}
	for _, r := range k.Replacements {
		if r.Path != "" {
			files = append(files, r.Path)
		}
	}
	kv := func(s kustypes.KvPairSources) {
		for _, f := range s.FileSources {
			if _, p, ok := strings.Cut(f, "="); ok {
				f = p
			}
			files = append(files, f)
		}
		files = append(files, s.EnvSources...)
		if s.EnvSource != "" {
			files = append(files, s.EnvSource)
		}
	}
	for _, g := range k.ConfigMapGenerator {
		kv(g.KvPairSources)
	}
	for _, g := range k.SecretGenerator {
		kv(g.KvPairSources)
	}
	return folders, files
}

// cloneFS serves kustomize's temporary Git clones from the disk and everything else from the
// in-memory tree. Only the folders kustomize creates for clones are reachable on disk, and
// kustomize keeps a clone's reads inside its folder.
type cloneFS struct {
	filesys.FileSystem // the tree
	disk               filesys.FileSystem
	prefix             string // the temporary folder of clones, with "kustomize-"
}

func newCloneFS(tree filesys.FileSystem) filesys.FileSystem {
	tmp := os.TempDir()
	if real, err := filepath.EvalSymlinks(tmp); err == nil {
		tmp = real
	}
	return &cloneFS{FileSystem: tree, disk: filesys.MakeFsOnDisk(), prefix: filepath.Join(tmp, "kustomize-")}
}

func (c *cloneFS) fs(p string) filesys.FileSystem {
	if strings.HasPrefix(filepath.Clean(p), c.prefix) {
		return c.disk
	}
	return c.FileSystem
}

func (c *cloneFS) Create(p string) (filesys.File, error) { return c.fs(p).Create(p) }
func (c *cloneFS) Mkdir(p string) error                  { return c.fs(p).Mkdir(p) }
func (c *cloneFS) MkdirAll(p string) error               { return c.fs(p).MkdirAll(p) }
func (c *cloneFS) RemoveAll(p string) error              { return c.fs(p).RemoveAll(p) }
func (c *cloneFS) Open(p string) (filesys.File, error)   { return c.fs(p).Open(p) }
func (c *cloneFS) IsDir(p string) bool                   { return c.fs(p).IsDir(p) }
func (c *cloneFS) ReadDir(p string) ([]string, error)    { return c.fs(p).ReadDir(p) }
func (c *cloneFS) Exists(p string) bool                  { return c.fs(p).Exists(p) }
func (c *cloneFS) Glob(p string) ([]string, error)       { return c.fs(p).Glob(p) }
func (c *cloneFS) ReadFile(p string) ([]byte, error)     { return c.fs(p).ReadFile(p) }
func (c *cloneFS) WriteFile(p string, data []byte) error { return c.fs(p).WriteFile(p, data) }
func (c *cloneFS) Walk(p string, fn filepath.WalkFunc) error {
	return c.fs(p).Walk(p, fn)
}
func (c *cloneFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	return c.fs(p).CleanedAbs(p)
}
