package build

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// ImagePrefix is the repository prefix of the image references checked in to the Kustomize bases
// (ghcr.io/plumb-dev/<component name>:latest); Pin replaces those references.
const ImagePrefix = "ghcr.io/plumb-dev/"

// Push writes idx (its images, then the index) to ref, a tag or a digest, and returns the
// repository pinned to the index digest: <repo>@sha256:<hex>.
func Push(ctx context.Context, idx v1.ImageIndex, ref name.Reference, opts ...remote.Option) (name.Digest, error) {
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.WriteIndex(ref, idx, append(opts, remote.WithContext(ctx))...); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return ref.Context().Digest(d.String()), nil
}

// Image is the Kustomize images: entry that replaces the checked-in image of component by ref.
func Image(component Component, ref name.Digest) types.Image {
	return types.Image{Name: ImagePrefix + component.Name, NewName: ref.Context().Name(), Digest: ref.DigestStr()}
}

// Pin renders the component's Kustomize base with its image replaced by ref, and args appended
// to the component's container in the base's Deployment, as one multi-document YAML ready for
// kubectl apply. The checked-in files are not changed: the base is copied into an in-memory file
// system under an overlay that holds only the images: override, which is what an overlay of a
// user would do; so the base must not refer to files outside its folder.
func Pin(root string, component Component, ref name.Digest, args ...string) ([]byte, error) {
	fsys := filesys.MakeFsInMemory()
	base := filepath.Join(root, filepath.FromSlash(component.Config))
	if err := copyInto(fsys, base, "/base"); err != nil {
		return nil, fmt.Errorf("read %s: %w", base, err)
	}
	image := Image(component, ref)
	overlay, err := yaml.Marshal(types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{"base"},
		Images:    []types.Image{image},
	})
	if err != nil {
		return nil, err
	}
	if err := fsys.WriteFile("/kustomization.yaml", overlay); err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, "/")
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", base, err)
	}
	pinned := 0
	for _, r := range m.Resources() {
		if r.GetKind() != "Deployment" {
			continue
		}
		c, err := r.Pipe(yaml.Lookup("spec", "template", "spec", "containers", "[name="+component.Container+"]"))
		if err != nil || c == nil {
			continue
		}
		if img, _ := c.Pipe(yaml.Lookup("image")); img != nil && img.YNode().Value == image.NewName+"@"+image.Digest {
			pinned++
		}
		if len(args) == 0 {
			continue
		}
		list, err := c.Pipe(yaml.LookupCreate(yaml.SequenceNode, "args"))
		if err != nil {
			return nil, fmt.Errorf("args of Deployment %s: %w", r.GetName(), err)
		}
		have := map[string]bool{}
		for _, n := range list.YNode().Content {
			have[n.Value] = true
		}
		for _, a := range args {
			if !have[a] { // an argument the base already has is not repeated
				list.YNode().Content = append(list.YNode().Content, yaml.NewStringRNode(a).YNode())
			}
		}
	}
	if pinned == 0 {
		return nil, fmt.Errorf("%s: no Deployment runs image %s%s in a container named %s", base, ImagePrefix, component.Name, component.Container)
	}
	return m.AsYaml()
}

// copyInto copies the regular files under dir on disk to the folder to of fsys.
func copyInto(fsys filesys.FileSystem, dir, to string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return fsys.WriteFile(path.Join(to, filepath.ToSlash(rel)), b)
	})
}
