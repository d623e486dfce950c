package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Kind is the spec of one kind at the version a cluster stores: its group, version, and every
// field path under spec.
type Kind struct {
	Name    string
	Group   string
	Version string
	// Fields holds every field path under spec, sorted: "interval", "sourceRef.kind",
	// "patches[].target.name". Objects count as fields as well as their children, so a missing
	// object and each field under it are all uncovered.
	Fields []string
}

// readKinds reads every CustomResourceDefinition in the files matching pattern, by kind.
func readKinds(pattern string) (map[string]*Kind, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	kinds := map[string]*Kind{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		k, err := parseCRD(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if k == nil {
			continue // not a CustomResourceDefinition
		}
		if prev, ok := kinds[k.Name]; ok {
			return nil, fmt.Errorf("%s: kind %s is defined twice (%s and %s)", f, k.Name, prev.Group, k.Group)
		}
		kinds[k.Name] = k
	}
	return kinds, nil
}

// parseCRD returns the kind a CustomResourceDefinition defines, with the fields of its storage
// version (the last served version when none is marked). Other documents give nil.
func parseCRD(data []byte) (*Kind, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return nil, err
	}
	if crd.Kind != "CustomResourceDefinition" {
		return nil, nil
	}
	var v *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		cv := &crd.Spec.Versions[i]
		if cv.Storage {
			v = cv
			break
		}
		if cv.Served {
			v = cv
		}
	}
	if v == nil {
		return nil, fmt.Errorf("%s has no served version", crd.Name)
	}
	k := &Kind{Name: crd.Spec.Names.Kind, Group: crd.Spec.Group, Version: v.Name}
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("%s %s has no schema", crd.Name, v.Name)
	}
	spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]
	if !ok {
		return k, nil
	}
	k.Fields = walk("", spec)
	sort.Strings(k.Fields)
	return k, nil
}

// walk lists the field paths under a schema: each property, then the properties of objects
// and of arrays of objects ("[]" marks the array). Maps and free-form values are leaves.
func walk(prefix string, s apiextensionsv1.JSONSchemaProps) []string {
	if s.Type == "array" && s.Items != nil && s.Items.Schema != nil {
		return walk(prefix+"[]", *s.Items.Schema)
	}
	var paths []string
	for name, p := range s.Properties {
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		paths = append(paths, path)
		paths = append(paths, walk(path, p)...)
	}
	return paths
}

// parent returns the path of the object that holds a field, or "" at the top of spec.
func parent(path string) string {
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(path[:i], "[]")
}
