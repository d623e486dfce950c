package migrate

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// AutomatedFinding is the Field of the finding about an Application that Argo CD syncs only
// when asked: its objects are written suspended. It is a note, not something that stops a
// takeover.
const AutomatedFinding = "spec.syncPolicy.automated"

// ArgoConverter converts live Argo CD Applications, one at a time, to Plumb objects. The
// sources of the Applications it converts are shared as in a repository's migration: one
// GitRepository per repository and revision, one HelmRepository per URL.
type ArgoConverter struct {
	run *argoRun
	// sources are the sources written so far, by kind/name: an Application that reads a
	// source written for an earlier one gets it too.
	sources map[string]*unstructured.Unstructured
}

// NewArgoConverter returns a converter of live Applications. The repositories' files are not
// at hand: a Git source is a HelmRelease when the Application says it is Helm (spec or
// status.sourceType), and a Kustomization otherwise.
func NewArgoConverter(namespace string) *ArgoConverter {
	if namespace == "" {
		namespace = "plumb-system"
	}
	return &ArgoConverter{
		run:     &argoRun{opts: ArgoOptions{Namespace: namespace}, repos: map[string]bool{}, sources: map[string]string{}, names: map[string]bool{}},
		sources: map[string]*unstructured.Unstructured{},
	}
}

// ArgoObjects are the Plumb objects of one Application.
type ArgoObjects struct {
	// Sources are the sources its objects read.
	Sources []*unstructured.Unstructured
	// Objects are its Kustomizations and HelmReleases.
	Objects []*unstructured.Unstructured
	// Findings are what cannot be carried over; Finding.File is empty.
	Findings []Finding
}

// Application converts one Application (an object as the API server returns it). Its status
// says what kind of source Argo CD found where the spec does not.
func (c *ArgoConverter) Application(app map[string]any) (*ArgoObjects, error) {
	doc, err := argoDocument(app)
	if err != nil {
		return nil, err
	}
	conv := &converter{run: c.run}
	conv.application(doc)
	out := &ArgoObjects{Findings: conv.findings}
	for _, n := range conv.objects {
		u, err := toUnstructured(n)
		if err != nil {
			return nil, err
		}
		switch u.GetKind() {
		case "Kustomization", "HelmRelease":
			out.Objects = append(out.Objects, u)
		default:
			c.sources[u.GetKind()+"/"+u.GetName()] = u
		}
	}
	seen := map[string]bool{}
	for _, o := range out.Objects {
		ref, _, _ := unstructured.NestedStringMap(o.Object, "spec", "sourceRef")
		if ref == nil {
			ref, _, _ = unstructured.NestedStringMap(o.Object, "spec", "chart", "spec", "sourceRef")
		}
		key := ref["kind"] + "/" + ref["name"]
		if s, ok := c.sources[key]; ok && !seen[key] {
			seen[key] = true
			out.Sources = append(out.Sources, s.DeepCopy())
		}
	}
	return out, nil
}

// argoDocument is the YAML of an Application's name and spec, each source of which says its
// kind: helm, kustomize or directory, from the status when the spec does not say.
func argoDocument(app map[string]any) (*yaml.Node, error) {
	u := unstructured.Unstructured{Object: app}
	spec, _, _ := unstructured.NestedMap(app, "spec")
	types, _, _ := unstructured.NestedStringSlice(app, "status", "sourceTypes")
	if t, _, _ := unstructured.NestedString(app, "status", "sourceType"); t != "" && len(types) == 0 {
		types = []string{t}
	}
	if s, ok := spec["source"].(map[string]any); ok {
		sayKind(s, at(types, 0))
	}
	if list, ok := spec["sources"].([]any); ok {
		for i, x := range list {
			if s, ok := x.(map[string]any); ok {
				sayKind(s, at(types, i))
			}
		}
	}
	doc := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": "Application", "metadata": map[string]any{"name": u.GetName()}, "spec": spec}
	b, err := sigsyaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("Application %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil || len(n.Content) == 0 {
		return nil, fmt.Errorf("Application %s/%s: not YAML: %v", u.GetNamespace(), u.GetName(), err)
	}
	return n.Content[0], nil
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// sayKind adds helm, kustomize or directory to a Git source that names none, as Argo CD found
// it (status.sourceType): the files that would tell are not at hand.
func sayKind(s map[string]any, sourceType string) {
	for _, k := range []string{"chart", "helm", "kustomize", "directory", "plugin", "ref"} {
		if _, ok := s[k]; ok {
			return
		}
	}
	switch sourceType {
	case "Helm":
		s["helm"] = map[string]any{}
	case "Kustomize":
		s["kustomize"] = map[string]any{}
	default:
		s["directory"] = map[string]any{}
	}
}

// toUnstructured reads an object written as a YAML node.
func toUnstructured(n *yaml.Node) (*unstructured.Unstructured, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := sigsyaml.Unmarshal(buf.Bytes(), &m); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}
