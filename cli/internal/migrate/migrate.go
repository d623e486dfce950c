// Package migrate rewrites a repository's Flux manifests into Plumb's: the API groups change, and
// every field Plumb's kind does not have is reported with its file and line, so a person can
// decide what to do before anything is applied. Only the changed values are rewritten, in place:
// comments, indentation and quoting stay as the author wrote them. Argo CD's Applications and
// ApplicationSets (argocd*.go) become Plumb objects written next to them, with the same report.
package migrate

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Version is the version of every Plumb API group.
const Version = "v1beta1"

// FluxGroups are Flux's API groups and Plumb's for each.
var FluxGroups = map[string]string{
	"source.toolkit.fluxcd.io":       "source.plumb.dev",
	"kustomize.toolkit.fluxcd.io":    "apply.plumb.dev",
	"helm.toolkit.fluxcd.io":         "helm.plumb.dev",
	"image.toolkit.fluxcd.io":        "image.plumb.dev",
	"notification.toolkit.fluxcd.io": "notification.plumb.dev",
}

// unsupportedGroups are Flux groups with no Plumb group at all, and what to do instead.
var unsupportedGroups = map[string]string{
	"source.extensions.fluxcd.io": "Plumb has no source extensions; any kind may publish status.artifact under Plumb's artifact contract (docs/contracts/artifact.md): keep Flux for it or replace it by a producer of your own",
}

// unsupportedKinds are Flux kinds in a group Plumb has whose kind Plumb does not have.
var unsupportedKinds = map[string]string{
	"ExternalArtifact": "Plumb has no ExternalArtifact: any kind may publish status.artifact under Plumb's artifact contract (docs/contracts/artifact.md), so point the consumer at the producer itself",
}

// Finding is one thing that cannot be migrated as it is.
type Finding struct {
	File string
	Line int
	// Object is kind/name of the document.
	Object string
	// Field is the path of the field in the document, "" for the whole document.
	Field   string
	Message string
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Object)
	if f.Field != "" {
		s += ": " + f.Field
	}
	return s + ": " + f.Message
}

// Report is what a migration found and did.
type Report struct {
	// From is the tool migrated from: "flux" (the default) or "argocd".
	From string
	// Migrated counts documents whose apiVersion moved to Plumb's, or the Argo CD objects
	// turned into Plumb objects.
	Migrated int
	// Objects counts the Plumb objects written from Argo CD objects.
	Objects int
	// Changed are the files with a change (for Argo CD, the files written), relative to the
	// directory.
	Changed []string
	// Findings cannot be migrated as they are.
	Findings []Finding
	// Skipped are files that are not YAML (Helm templates, say), and why.
	Skipped []string
}

// Print writes the report for a person.
func (r *Report) Print(w io.Writer, written bool) {
	for _, f := range r.Findings {
		fmt.Fprintln(w, f)
	}
	for _, s := range r.Skipped {
		fmt.Fprintln(w, "skipped "+s)
	}
	verb := "would change"
	if written {
		verb = "changed"
	}
	for _, f := range r.Changed {
		fmt.Fprintf(w, "%s %s\n", verb, f)
	}
	if r.From == "argocd" {
		fmt.Fprintf(w, "%d Argo CD objects to %d Plumb objects in %d files (%s); %d fields or kinds that cannot be migrated\n", r.Migrated, r.Objects, len(r.Changed), verb, len(r.Findings))
		return
	}
	fmt.Fprintf(w, "%d Flux objects to Plumb's API groups in %d files (%s); %d fields or kinds that cannot be migrated\n", r.Migrated, len(r.Changed), verb, len(r.Findings))
}

// Repo migrates the Flux manifests under dir: every *.yaml and *.yml file, every document. With
// write, changed files are rewritten in place; without, nothing is written.
func Repo(dir string, schemas Schemas, write bool) (*Report, error) {
	r := &Report{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		return r.file(path, rel, schemas, write)
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return r, nil
}

// edit replaces one scalar value at a line and column (1-based) of a file.
type edit struct {
	line, column int
	old, new     string
	// after, when set, is a whole line inserted after line (old and new are unused).
	after string
}

// file migrates one file.
func (r *Report) file(path, rel string, schemas Schemas, write bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var edits []edit
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			// Not YAML (a Helm chart's template, say): not a manifest to migrate.
			r.Skipped = append(r.Skipped, fmt.Sprintf("%s: not YAML, left as it is (%v)", rel, err))
			return nil
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		e, findings, migrated := migrateDocument(rel, doc.Content[0], schemas)
		edits = append(edits, e...)
		r.Findings = append(r.Findings, findings...)
		if migrated {
			r.Migrated++
		}
	}
	if len(edits) == 0 {
		return nil
	}
	r.Changed = append(r.Changed, rel)
	if !write {
		return nil
	}
	out, err := apply(b, edits)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

// migrateDocument returns the edits one document needs and what cannot be migrated.
func migrateDocument(file string, doc *yaml.Node, schemas Schemas) ([]edit, []Finding, bool) {
	apiVersion, kind := field(doc, "apiVersion"), field(doc, "kind")
	if apiVersion == nil || kind == nil {
		return nil, nil, false
	}
	group, _, _ := strings.Cut(apiVersion.Value, "/")
	object := kind.Value
	if name := field(field(doc, "metadata"), "name"); name != nil {
		object += "/" + name.Value
	}
	if why, ok := unsupportedGroups[group]; ok {
		return nil, []Finding{{File: file, Line: apiVersion.Line, Object: object, Message: why}}, false
	}
	plumbGroup, ok := FluxGroups[group]
	if !ok {
		return nil, nil, false
	}
	if why, ok := unsupportedKinds[kind.Value]; ok {
		return nil, []Finding{{File: file, Line: kind.Line, Object: object, Message: why}}, false
	}
	var findings []Finding
	edits := []edit{versionEdit(apiVersion, plumbGroup)}
	spec := field(doc, "spec")
	if spec != nil {
		edits = append(edits, nestedVersions(spec)...)
		findings = append(findings, nestedKinds(file, object, "spec", spec)...)
		schema, ok := schemas.Spec(plumbGroup, kind.Value)
		if !ok {
			findings = append(findings, Finding{File: file, Line: kind.Line, Object: object, Message: fmt.Sprintf("Plumb has no kind %s in %s; keep Flux for it or remove it", kind.Value, plumbGroup)})
		} else {
			findings = append(findings, unknownFields(file, object, "spec", spec, schema)...)
		}
		if kind.Value == "HelmRelease" {
			e, f := storageNamespace(file, object, doc, spec)
			edits, findings = append(edits, e...), append(findings, f...)
		}
	}
	return edits, findings, true
}

// storageNamespace keeps a HelmRelease's Helm storage where Flux keeps it. Flux's default
// storage namespace is the HelmRelease's own, Plumb's the target namespace: with a
// targetNamespace and no storageNamespace, the line storageNamespace: <the HelmRelease's
// namespace> is added under targetNamespace, so that helm-controller finds and adopts the release
// Flux made. Without a namespace in the document (a kustomization sets it) it is a finding.
func storageNamespace(file, object string, doc, spec *yaml.Node) ([]edit, []Finding) {
	target := field(spec, "targetNamespace")
	if target == nil || field(spec, "storageNamespace") != nil {
		return nil, nil
	}
	ns := field(field(doc, "metadata"), "namespace")
	if ns == nil || spec.Style&yaml.FlowStyle != 0 || target.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return nil, []Finding{{File: file, Line: target.Line, Object: object, Field: "spec.storageNamespace",
			Message: "Flux keeps this release's Helm storage in the HelmRelease's namespace, Plumb in targetNamespace unless told: set spec.storageNamespace to the HelmRelease's namespace, so that helm-controller adopts the release Flux made"}}
	}
	indent := strings.Repeat(" ", target.Column-1-len("targetNamespace: "))
	for _, k := range spec.Content {
		if k.Value == "targetNamespace" {
			indent = strings.Repeat(" ", k.Column-1)
		}
	}
	return []edit{{line: target.Line, after: indent + "storageNamespace: " + ns.Value + "\n"}}, nil
}

// versionEdit moves an apiVersion scalar to Plumb's group.
func versionEdit(n *yaml.Node, plumbGroup string) edit {
	return edit{line: n.Line, column: n.Column, old: n.Value, new: plumbGroup + "/" + Version}
}

// nestedVersions finds apiVersion fields below n that name a Flux group (sourceRef, chartRef,
// dependsOn, eventSources, resources ...).
func nestedVersions(n *yaml.Node) []edit {
	var edits []edit
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "apiVersion" && v.Kind == yaml.ScalarNode {
				group, _, _ := strings.Cut(v.Value, "/")
				if plumbGroup, ok := FluxGroups[group]; ok {
					edits = append(edits, versionEdit(v, plumbGroup))
				}
				continue
			}
			edits = append(edits, nestedVersions(v)...)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			edits = append(edits, nestedVersions(c)...)
		}
	}
	return edits
}

// nestedKinds reports references (kind fields) to kinds Plumb does not have.
func nestedKinds(file, object, path string, n *yaml.Node) []Finding {
	var findings []Finding
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path + "." + k.Value
			if k.Value == "kind" && v.Kind == yaml.ScalarNode {
				if why, ok := unsupportedKinds[v.Value]; ok {
					findings = append(findings, Finding{File: file, Line: v.Line, Object: object, Field: p, Message: why})
				}
				continue
			}
			findings = append(findings, nestedKinds(file, object, p, v)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			findings = append(findings, nestedKinds(file, object, fmt.Sprintf("%s[%d]", path, i), c)...)
		}
	}
	return findings
}

// field returns the value of key in a mapping node, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// apply makes the edits in the file's bytes, each in its own line, so that everything else in the
// file (comments, indentation, quotes, line endings) stays byte for byte.
func apply(b []byte, edits []edit) ([]byte, error) {
	lines := bytes.SplitAfter(b, []byte("\n"))
	// Last first, so that an edit does not move the columns of the edits before it on its line.
	edits = slices.Clone(edits)
	slices.SortFunc(edits, func(a, b edit) int { return cmp.Or(cmp.Compare(b.line, a.line), cmp.Compare(b.column, a.column)) })
	for _, e := range edits {
		if e.line < 1 || e.line > len(lines) {
			return nil, fmt.Errorf("line %d is outside the file", e.line)
		}
		if e.after != "" {
			if !bytes.HasSuffix(lines[e.line-1], []byte("\n")) {
				lines[e.line-1] = append(lines[e.line-1], '\n')
			}
			lines = slices.Insert(lines, e.line, []byte(e.after))
			continue
		}
		l := lines[e.line-1]
		start := e.column - 1
		if start < 0 || start > len(l) {
			return nil, fmt.Errorf("line %d: column %d is outside the line", e.line, e.column)
		}
		i := bytes.Index(l[start:], []byte(e.old))
		if i < 0 {
			return nil, fmt.Errorf("line %d: %q is not where the YAML parser saw it; rewrite it by hand", e.line, e.old)
		}
		i += start
		lines[e.line-1] = append(append(append([]byte{}, l[:i]...), e.new...), l[i+len(e.old):]...)
	}
	return bytes.Join(lines, nil), nil
}
