// Package kustomize turns a folder of a source artifact into the objects to apply: it loads the
// artifact into an in-memory file system, generates a kustomization where the folder has none,
// wraps it in one carrying the Kustomization's spec (namespace, prefix and suffix, metadata,
// patches, images, components), runs kustomize with plugins off, and substitutes variables.
// apply-controller builds with it, and `plumb diff` builds the same way.
package kustomize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/redact"
)

// Options are the parts of a Kustomization's spec that shape the build.
type Options struct {
	Path            string
	TargetNamespace string
	NamePrefix      string
	NameSuffix      string
	// Labels and Annotations are set on every object after the build and the substitution
	// (on the object's own metadata, not in selectors or templates), replacing values of the
	// same keys, as Flux's commonMetadata does.
	Labels      map[string]string
	Annotations map[string]string
	Patches     []Patch
	Images      []kustypes.Image
	Components  []string
	// IgnoreMissingComponents leaves out the Components that are not in the artifact.
	IgnoreMissingComponents bool
	// BuildMetadata are kustomize's buildMetadata options (originAnnotations,
	// transformerAnnotations) for the build.
	BuildMetadata []string
	// Vars are substituted for ${name} and ${name:=default} after the build; nil skips
	// substitution.
	Vars map[string]string
	// RemoteBases lets kustomize fetch the Git and http(s) references of the artifact's
	// kustomizations; without it they fail the build before anything is fetched.
	RemoteBases bool
	// Secrets are the values of Vars read from Secrets: the digest is taken with them masked,
	// and SecretVersions (the resource versions of their Secrets) stand for them in it.
	Secrets        []string `json:"-"`
	SecretVersions []string
	// Decryptor, when set, decrypts the SOPS-encrypted files of the artifact as kustomize reads
	// them (manifests and Secret generator inputs), in memory; the resource version of its key
	// Secret is among SecretVersions.
	Decryptor Decryptor `json:"-"`
}

// Decryptor opens encrypted files: it returns the plaintext of a file (data itself when it is
// not encrypted) and the values that were encrypted in it, to mask. name is the file's path
// inside the artifact.
type Decryptor interface {
	Decrypt(name string, data []byte) ([]byte, []string, error)
}

// Patch is a strategic merge or JSON 6902 patch with an optional target.
type Patch struct {
	Patch  string
	Target *kustypes.Selector
}

// Result is a build's output.
type Result struct {
	Objects []*unstructured.Unstructured
	// Digest identifies the built objects after substitution (each one's JSON; a substituted
	// one's YAML as substituted, and commonMetadata), with the values of Secrets and decrypted
	// values masked (shared/redact.Digest, maskedForms): the same in every process, and no guess
	// of a secret can be tested against it.
	Digest string
	// Remote says that the build fetched references from outside the artifact, so it may
	// differ the next time: it is not to be reused.
	Remote bool
	// Secrets are the values decrypted by Options.Decryptor: never to appear in a message.
	Secrets []string `json:"-"`
}

// ErrBuild wraps every failure caused by the manifests or the options (as opposed to reading
// the artifact).
var ErrBuild = errors.New("build")

// ErrDecryption wraps the failures to decrypt a file of the artifact, or to read the keys.
var ErrDecryption = errors.New("decryption")

// SubstituteAnnotation set to "disabled" on an object leaves its ${...} as they are.
// FluxSubstituteAnnotation, Flux's key of it, is honoured alike.
const (
	SubstituteAnnotation     = "apply.plumb.dev/substitute"
	FluxSubstituteAnnotation = "kustomize.toolkit.fluxcd.io/substitute"
)

// srcRoot is the folder of the in-memory file system that holds the artifact; the wrapper
// kustomization lives beside it, since kustomize refuses a base that contains its overlay.
const srcRoot = "/src"

// kustomizationFiles are the names kustomize recognises, in its order of preference.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Tree is an artifact loaded into memory once, and built from as often as needed: builds of
// different paths and options share it (one at a time), so a repository of a thousand apps is
// unpacked once, not once per app.
type Tree struct {
	mu sync.Mutex
	fs filesys.FileSystem
	n  int
}

// NewTree wraps a file system whose artifact lies under srcRoot.
func NewTree(fs filesys.FileSystem) *Tree { return &Tree{fs: fs} }

// Load reads a gzipped tarball artifact into a new in-memory tree.
func Load(r io.Reader, lim artifact.Limits) (*Tree, error) {
	fs, err := loadFS(r, lim)
	if err != nil {
		return nil, err
	}
	return NewTree(fs), nil
}

func loadFS(r io.Reader, lim artifact.Limits) (filesys.FileSystem, error) {
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

// Build runs the build of opts.Path. It writes nothing into the artifact's tree: a wrapper
// kustomization in a folder of its own applies opts (and lists the manifests of a folder without
// a kustomization), and is removed after.
func (t *Tree) Build(opts Options) (*Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	return build(t.fs, opts, fmt.Sprintf("/plumb-build/%d", t.n))
}

func build(fs filesys.FileSystem, opts Options, w string) (*Result, error) {
	dir := path.Join(srcRoot, opts.Path)
	if !fs.IsDir(dir) {
		return nil, fmt.Errorf("%w: path %q is not a folder of the artifact", ErrBuild, opts.Path)
	}
	up := strings.Repeat("../", strings.Count(w, "/")) + strings.TrimPrefix(srcRoot, "/")
	// An encrypted manifest is listed by its ciphertext: SOPS keeps the keys, and apiVersion and
	// kind, encrypted or not, are there; an encrypted file that is no manifest is left out
	// without being decrypted.
	resources, err := resourcesOf(fs, dir, up)
	if err != nil {
		return nil, err
	}
	wrapper, err := wrap(fs, w, up, dir, resources, opts)
	if err != nil {
		return nil, err
	}
	defer fs.RemoveAll(wrapper)
	refs := foreignRefs(fs, wrapper)
	for _, f := range refs {
		if f.class == refDisk {
			return nil, fmt.Errorf("%w: %s: file:// references are refused, they would read the controller's own disk", ErrBuild, f)
		}
		if !opts.RemoteBases {
			return nil, fmt.Errorf("%w: %s: remote bases are turned off on this controller (--no-remote-bases); copy the base into the source", ErrBuild, f)
		}
	}
	var kfs filesys.FileSystem = fs
	var dfs *decryptFS
	if opts.Decryptor != nil {
		dfs = &decryptFS{FileSystem: fs, d: opts.Decryptor}
		kfs = dfs
	}
	if len(refs) > 0 {
		kfs = newCloneFS(kfs)
	}
	k := krusty.MakeKustomizer(&krusty.Options{
		Reorder: krusty.ReorderOptionLegacy,
		// The file system holds nothing but the artifact, so files outside a kustomization's
		// folder (the wrapper's, or a base's ../common) can only be the artifact's own.
		LoadRestrictions: kustypes.LoadRestrictionsNone,
		PluginConfig:     kustypes.DisabledPluginConfig(),
	})
	m, err := k.Run(kfs, wrapper)
	if dfs != nil && dfs.err != nil {
		// kustomize words a failed read its own way; the decryption's message is the one.
		return nil, fmt.Errorf("%w: %w", ErrBuild, dfs.err)
	}
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), up+"/", "")
		msg = strings.ReplaceAll(msg, srcRoot+"/", "")
		for _, f := range refs {
			msg = redact.Credentials(msg, f.ref)
		}
		return nil, fmt.Errorf("%w: kustomize build %s: %s", ErrBuild, displayPath(opts.Path), msg)
	}
	var decrypted []string
	if dfs != nil {
		decrypted = dfs.values
	}
	var out []*unstructured.Unstructured
	var all bytes.Buffer
	enc := json.NewEncoder(&all)
	enc.SetEscapeHTML(false)
	for _, res := range m.Resources() {
		obj, err := objectOf(res)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBuild, res.CurId(), err)
		}
		if len(opts.BuildMetadata) > 0 {
			relocateOrigins(obj, wrapper, dir)
		}
		substituted := "" // the object's YAML, when variables were substituted in it
		if opts.Vars != nil && !substitutionDisabled(obj) {
			// Variables are substituted in the object's YAML, as Flux does: a value takes the
			// type its place in the YAML gives it.
			y, err := yaml.Marshal(obj.Object)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBuild, describe(obj), err)
			}
			s, err := Substitute(string(y), opts.Vars)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBuild, describe(obj), err)
			}
			name := describe(obj)
			obj = &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(s), &obj.Object); err != nil {
				return nil, fmt.Errorf("%w: %s after variable substitution: %v", ErrBuild, name, err)
			}
			substituted = s
			if len(decrypted) > 0 || len(opts.Secrets) > 0 {
				if substituted, err = maskedSubstitution(y, opts.Vars, opts.Secrets, decrypted); err != nil {
					return nil, fmt.Errorf("%w: %s: %v", ErrBuild, name, err)
				}
			}
		}
		if len(opts.Labels) > 0 || len(opts.Annotations) > 0 {
			setCommonMetadata(obj, opts.Labels, opts.Annotations)
		}
		// A substituted object enters the digest as its YAML was substituted, with the secret
		// values masked before (maskedSubstitution), and commonMetadata after it: parsing may
		// have changed a value's form (a number's leading zeros, say).
		digested := obj.Object
		if substituted != "" {
			all.WriteString(substituted)
			digested = map[string]any{"labels": opts.Labels, "annotations": opts.Annotations}
		}
		if err := enc.Encode(digested); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBuild, describe(obj), err)
		}
		out = append(out, obj)
	}
	masked := maskedForms(append(append([]string(nil), opts.Secrets...), decrypted...))
	return &Result{Objects: out, Digest: redact.Digest(all.Bytes(), masked, opts.SecretVersions...), Remote: len(refs) > 0, Secrets: decrypted}, nil
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

// resourcesOf returns what the wrapper builds from, as paths relative to the wrapper (up leads
// from it to srcRoot): dir itself when it has a kustomization; otherwise its manifests and the
// subfolders that have a kustomization of their own (their content is theirs), in name order.
// Nothing is written into the artifact's tree, so builds never see each other's choices.
func resourcesOf(fs filesys.FileSystem, dir, up string) ([]string, error) {
	rel := func(p string) string { return up + strings.TrimPrefix(p, srcRoot) }
	if hasKustomization(fs, dir) {
		return []string{rel(dir)}, nil
	}
	var resources []string
	err := walk(fs, dir, func(p string, isDir bool) (bool, error) {
		if p == dir {
			return true, nil
		}
		if isDir {
			if hasKustomization(fs, p) {
				resources = append(resources, rel(p))
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
			resources = append(resources, rel(p))
		}
		return false, err
	})
	return resources, err
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
// A document that looks like an object with a field missing is an error, not skipped: its object
// would otherwise be pruned without a word.
func isManifest(fs filesys.FileSystem, p string) (bool, error) {
	data, err := fs.ReadFile(p)
	if err != nil {
		return false, err
	}
	name := strings.TrimPrefix(p, srcRoot+"/")
	any := false
	for _, doc := range splitDocuments(data) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return false, fmt.Errorf("%w: %s: %v", ErrBuild, name, err)
		}
		switch {
		case head.APIVersion == "" && head.Kind == "":
			continue
		case head.APIVersion != "" && head.Kind == "":
			return false, fmt.Errorf("%w: %s: a document has apiVersion %q but no kind", ErrBuild, name, head.APIVersion)
		case head.APIVersion == "" && head.Metadata.Name != "":
			return false, fmt.Errorf("%w: %s: %s %s has no apiVersion", ErrBuild, name, head.Kind, head.Metadata.Name)
		case head.APIVersion == "":
			return false, nil // kind alone: not Kubernetes (a CI pipeline, say)
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

// wrap writes the kustomization that applies opts on top of the resources, in the build's own
// folder w outside the artifact, and returns w.
func wrap(fs filesys.FileSystem, w, up, dir string, resources []string, opts Options) (string, error) {
	if err := fs.MkdirAll(w); err != nil {
		return "", err
	}
	base := up + strings.TrimPrefix(dir, srcRoot)
	k := kustypes.Kustomization{
		TypeMeta:   kustypes.TypeMeta{APIVersion: kustypes.KustomizationVersion, Kind: kustypes.KustomizationKind},
		Resources:  resources,
		Namespace:  opts.TargetNamespace,
		NamePrefix: opts.NamePrefix,
		NameSuffix: opts.NameSuffix,
		Images:     opts.Images,
		// kustomize records the origin of the resources of this kustomization and of the
		// ones below it, so the wrapper asks for it.
		BuildMetadata: opts.BuildMetadata,
	}
	for _, c := range opts.Components {
		p := path.Join(base, c)
		if opts.IgnoreMissingComponents && !fs.Exists(path.Join(w, p)) {
			continue
		}
		k.Components = append(k.Components, p)
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

// The annotations of kustomize's buildMetadata options.
const (
	originAnnotation          = "config.kubernetes.io/origin"
	transformationsAnnotation = "alpha.config.kubernetes.io/transformations"
)

// relocateOrigins makes the paths in obj's origin and transformer annotations, which kustomize
// writes relative to the build's wrapper w, relative to dir (spec.path), as Flux's are: the
// wrapper's kustomization.yaml stands for one in dir.
func relocateOrigins(obj *unstructured.Unstructured, w, dir string) {
	a := obj.GetAnnotations()
	changed := false
	for _, key := range []string{originAnnotation, transformationsAnnotation} {
		v, ok := a[key]
		if !ok {
			continue
		}
		var doc any
		if err := yaml.Unmarshal([]byte(v), &doc); err != nil {
			continue // kustomize's own value; left as it is
		}
		relocate(doc, w, dir)
		out, err := yaml.Marshal(doc)
		if err != nil {
			continue
		}
		a[key], changed = string(out), true
	}
	if changed {
		obj.SetAnnotations(a)
	}
}

// relocate rewrites the path and configuredIn fields of an origin, or of a list of them, in
// place. The paths of a remote base's origin (one with a repo) are the repository's, and stay.
func relocate(doc any, w, dir string) {
	switch d := doc.(type) {
	case []any:
		for _, e := range d {
			relocate(e, w, dir)
		}
	case map[string]any:
		if _, remote := d["repo"]; remote {
			return
		}
		for _, k := range []string{"path", "configuredIn"} {
			p, ok := d[k].(string)
			if !ok || path.IsAbs(p) {
				continue
			}
			abs := path.Join(w, p)
			if rest, ok := strings.CutPrefix(abs, w+"/"); ok {
				abs = path.Join(dir, rest)
			}
			if rel, err := filepath.Rel(dir, abs); err == nil {
				d[k] = filepath.ToSlash(rel)
			}
		}
	}
}

// setCommonMetadata sets labels and annotations on obj's own metadata, replacing values of the
// same keys.
func setCommonMetadata(obj *unstructured.Unstructured, labels, annotations map[string]string) {
	if len(labels) > 0 {
		l := obj.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		for k, v := range labels {
			l[k] = v
		}
		obj.SetLabels(l)
	}
	if len(annotations) > 0 {
		a := obj.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		for k, v := range annotations {
			a[k] = v
		}
		obj.SetAnnotations(a)
	}
}

// Selector builds a kustomize selector.
func Selector(group, version, kind, name, namespace, labels, annotations string) *kustypes.Selector {
	return &kustypes.Selector{
		ResId:              resid.ResId{Gvk: resid.Gvk{Group: group, Version: version, Kind: kind}, Name: name, Namespace: namespace},
		LabelSelector:      labels,
		AnnotationSelector: annotations,
	}
}

// decryptFS hands kustomize the plaintext of the artifact's encrypted files; nothing is written
// back, so the shared tree keeps only ciphertext. The first failure is kept, to report it as
// such rather than as kustomize words it.
type decryptFS struct {
	filesys.FileSystem
	d      Decryptor
	values []string
	err    error
}

func (f *decryptFS) ReadFile(p string) ([]byte, error) {
	data, err := f.FileSystem.ReadFile(p)
	if err != nil || !strings.HasPrefix(p, srcRoot+"/") {
		return data, err
	}
	out, values, err := f.d.Decrypt(strings.TrimPrefix(p, srcRoot+"/"), data)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrDecryption, err)
		if f.err == nil {
			f.err = err
		}
		return nil, err
	}
	f.values = append(f.values, values...)
	return out, nil
}

// substitutionDisabled says whether obj's annotation, Plumb's or Flux's, turns substitution off.
func substitutionDisabled(obj *unstructured.Unstructured) bool {
	a := obj.GetAnnotations()
	return strings.EqualFold(a[SubstituteAnnotation], "disabled") || strings.EqualFold(a[FluxSubstituteAnnotation], "disabled")
}
