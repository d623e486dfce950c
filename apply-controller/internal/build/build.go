// Package build turns a folder of a source artifact into the objects to apply: it loads the
// artifact into an in-memory file system, generates a kustomization where the folder has none,
// wraps it in one carrying the Kustomization's spec (namespace, prefix and suffix, metadata,
// patches, images, components), runs kustomize with plugins off, and substitutes variables.
package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/artifact"
)

// Options are the parts of a Kustomization's spec that shape the build.
type Options struct {
	Path            string
	TargetNamespace string
	NamePrefix      string
	NameSuffix      string
	Labels          map[string]string
	Annotations     map[string]string
	Patches         []Patch
	Images          []kustypes.Image
	Components      []string
	// Vars are substituted for ${name} and ${name:=default} after the build; nil skips
	// substitution.
	Vars map[string]string
}

// Patch is a strategic merge or JSON 6902 patch with an optional target.
type Patch struct {
	Patch  string
	Target *kustypes.Selector
}

// Result is a build's output.
type Result struct {
	Objects []*unstructured.Unstructured
	// Digest is sha256:<hex> of the built YAML after substitution.
	Digest string
}

// ErrBuild wraps every failure caused by the manifests or the options (as opposed to reading
// the artifact).
var ErrBuild = errors.New("build")

// SubstituteAnnotation set to "disabled" on an object leaves its ${...} as they are.
const SubstituteAnnotation = "apply.plumb.dev/substitute"

// srcRoot is the folder of the in-memory file system that holds the artifact; the wrapper
// kustomization lives beside it, since kustomize refuses a base that contains its overlay.
const srcRoot = "/src"

// kustomizationFiles are the names kustomize recognises, in its order of preference.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Load reads a gzipped tarball artifact into a new in-memory file system, under srcRoot.
func Load(r io.Reader, lim artifact.Limits) (filesys.FileSystem, error) {
	fs := filesys.MakeFsInMemory()
	links := map[string]string{}
	err := artifact.Walk(r, lim, func(e artifact.Entry, body io.Reader) error {
		name := path.Join(srcRoot, e.Name)
		if e.Linkname != "" {
			// The in-memory file system has no links: a link to a file becomes a copy of it.
			links[name] = path.Join(path.Dir(name), e.Linkname)
			return nil
		}
		data, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if err := fs.MkdirAll(path.Dir(name)); err != nil {
			return err
		}
		return fs.WriteFile(name, data)
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(links))
	for n := range links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		target := links[n]
		for i := 0; i < 8 && links[target] != ""; i++ { // a chain of links, bounded
			target = links[target]
		}
		if !fs.Exists(target) || fs.IsDir(target) {
			continue
		}
		data, err := fs.ReadFile(target)
		if err != nil {
			return nil, err
		}
		if err := fs.MkdirAll(path.Dir(n)); err != nil {
			return nil, err
		}
		if err := fs.WriteFile(n, data); err != nil {
			return nil, err
		}
	}
	return fs, nil
}

// Build runs the build of opts.Path in fs. fs is modified (a generated kustomization and the
// wrapper are written into it): load a fresh one per build.
func Build(fs filesys.FileSystem, opts Options) (*Result, error) {
	dir := path.Join(srcRoot, opts.Path)
	if !fs.IsDir(dir) {
		return nil, fmt.Errorf("%w: path %q is not a folder of the artifact", ErrBuild, opts.Path)
	}
	if err := generate(fs, dir); err != nil {
		return nil, err
	}
	wrapper, err := wrap(fs, dir, opts)
	if err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(&krusty.Options{
		Reorder:          krusty.ReorderOptionLegacy,
		LoadRestrictions: kustypes.LoadRestrictionsRootOnly,
		PluginConfig:     kustypes.DisabledPluginConfig(),
	})
	m, err := k.Run(fs, wrapper)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), srcRoot+"/", "")
		return nil, fmt.Errorf("%w: kustomize build %s: %s", ErrBuild, displayPath(opts.Path), msg)
	}
	var out []*unstructured.Unstructured
	var all bytes.Buffer
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBuild, res.CurId(), err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(y, &obj.Object); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBuild, res.CurId(), err)
		}
		if opts.Vars != nil && obj.GetAnnotations()[SubstituteAnnotation] != "disabled" {
			s, err := Substitute(string(y), opts.Vars)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBuild, describe(obj), err)
			}
			obj = &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(s), &obj.Object); err != nil {
				return nil, fmt.Errorf("%w: %s after variable substitution: %v", ErrBuild, describe(obj), err)
			}
			y = []byte(s)
		}
		all.Write(y)
		all.WriteString("---\n")
		out = append(out, obj)
	}
	sum := sha256.Sum256(all.Bytes())
	return &Result{Objects: out, Digest: "sha256:" + hex.EncodeToString(sum[:])}, nil
}

func displayPath(p string) string {
	if p == "" || p == "." {
		return "./"
	}
	return "./" + strings.TrimPrefix(path.Clean(p), "./")
}

func describe(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s/%s/%s", obj.GetKind(), ns, obj.GetName())
	}
	return fmt.Sprintf("%s/%s", obj.GetKind(), obj.GetName())
}

// generate writes a kustomization into dir, when it has none, listing its manifests and the
// subfolders that have a kustomization of their own (their content is theirs).
func generate(fs filesys.FileSystem, dir string) error {
	if hasKustomization(fs, dir) {
		return nil
	}
	var resources []string
	err := walk(fs, dir, func(p string, isDir bool) (bool, error) {
		if p == dir {
			return true, nil
		}
		rel := strings.TrimPrefix(p, dir+"/")
		if isDir {
			if hasKustomization(fs, p) {
				resources = append(resources, rel)
				return false, nil
			}
			return true, nil
		}
		switch path.Ext(p) {
		case ".yaml", ".yml", ".json":
		default:
			return false, nil
		}
		ok, err := isManifest(fs, p)
		if ok {
			resources = append(resources, rel)
		}
		return false, err
	})
	if err != nil {
		return err
	}
	sort.Strings(resources)
	k := kustypes.Kustomization{TypeMeta: kustypes.TypeMeta{APIVersion: kustypes.KustomizationVersion, Kind: kustypes.KustomizationKind}, Resources: resources}
	data, err := yaml.Marshal(k)
	if err != nil {
		return err
	}
	return fs.WriteFile(path.Join(dir, "kustomization.yaml"), data)
}

// walk visits dir depth first in name order; visit says whether to enter a folder.
func walk(fs filesys.FileSystem, dir string, visit func(p string, isDir bool) (bool, error)) error {
	enter, err := visit(dir, true)
	if err != nil || !enter {
		return err
	}
	entries, err := fs.ReadDir(dir)
	if err != nil {
		return err
	}
	sort.Strings(entries)
	for _, e := range entries {
		p := path.Join(dir, e)
		if fs.IsDir(p) {
			if err := walk(fs, p, visit); err != nil {
				return err
			}
			continue
		}
		if _, err := visit(p, false); err != nil {
			return err
		}
	}
	return nil
}

func hasKustomization(fs filesys.FileSystem, dir string) bool {
	for _, f := range kustomizationFiles {
		if fs.Exists(path.Join(dir, f)) {
			return true
		}
	}
	return false
}

// isManifest says whether every document of a file is a Kubernetes object (apiVersion and kind),
// so that other YAML (values files, CI configuration) is left out of a generated kustomization.
func isManifest(fs filesys.FileSystem, p string) (bool, error) {
	data, err := fs.ReadFile(p)
	if err != nil {
		return false, err
	}
	any := false
	for _, doc := range splitDocuments(data) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return false, fmt.Errorf("%w: %s: %v", ErrBuild, strings.TrimPrefix(p, srcRoot+"/"), err)
		}
		if head.APIVersion == "" && head.Kind == "" {
			continue
		}
		if head.APIVersion == "" || head.Kind == "" {
			return false, nil
		}
		any = true
	}
	return any, nil
}

func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// wrap writes the kustomization that applies opts on top of dir, outside the artifact's folder,
// and returns its folder.
func wrap(fs filesys.FileSystem, dir string, opts Options) (string, error) {
	w := "/plumb-build"
	if err := fs.MkdirAll(w); err != nil {
		return "", err
	}
	base := ".." + dir
	k := kustypes.Kustomization{
		TypeMeta:   kustypes.TypeMeta{APIVersion: kustypes.KustomizationVersion, Kind: kustypes.KustomizationKind},
		Resources:  []string{base},
		Namespace:  opts.TargetNamespace,
		NamePrefix: opts.NamePrefix,
		NameSuffix: opts.NameSuffix,
		Images:     opts.Images,
	}
	if len(opts.Labels) > 0 {
		k.Labels = []kustypes.Label{{Pairs: opts.Labels}}
	}
	k.CommonAnnotations = opts.Annotations
	for _, c := range opts.Components {
		k.Components = append(k.Components, path.Join(base, c))
	}
	for _, p := range opts.Patches {
		k.Patches = append(k.Patches, kustypes.Patch{Patch: p.Patch, Target: p.Target})
	}
	data, err := yaml.Marshal(k)
	if err != nil {
		return "", err
	}
	return w, fs.WriteFile(path.Join(w, "kustomization.yaml"), data)
}

// Selector builds a kustomize selector.
func Selector(group, version, kind, name, namespace, labels, annotations string) *kustypes.Selector {
	return &kustypes.Selector{
		ResId:              resid.ResId{Gvk: resid.Gvk{Group: group, Version: version, Kind: kind}, Name: name, Namespace: namespace},
		LabelSelector:      labels,
		AnnotationSelector: annotations,
	}
}
