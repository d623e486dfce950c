package migrate

import (
	"fmt"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/plumb-dev/plumb/cli/internal/install"
)

// Schemas are the spec schemas of Plumb's kinds, by "Kind.group".
type Schemas map[string]*apiextensionsv1.JSONSchemaProps

// Spec returns the schema of the spec of a kind of a Plumb group.
func (s Schemas) Spec(group, kind string) (*apiextensionsv1.JSONSchemaProps, bool) {
	p, ok := s[kind+"."+group]
	return p, ok
}

// PlumbSchemas reads the schemas of the CRDs the CLI installs (the embedded install manifests),
// so the report matches the Plumb this CLI installs.
func PlumbSchemas() (Schemas, error) {
	objs, err := install.Render(install.Components, install.DefaultNamespace, install.Images{})
	if err != nil {
		return nil, err
	}
	s := Schemas{}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &crd); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", o.GetName(), err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Name != Version || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			if spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]; ok {
				s[crd.Spec.Names.Kind+"."+crd.Spec.Group] = &spec
			}
		}
	}
	return s, nil
}

// unknownFields reports every field of n that the schema does not have, with its line.
func unknownFields(file, object, path string, n *yaml.Node, schema *apiextensionsv1.JSONSchemaProps) []Finding {
	if schema == nil || (schema.XPreserveUnknownFields != nil && *schema.XPreserveUnknownFields) {
		return nil
	}
	var findings []Finding
	switch n.Kind {
	case yaml.MappingNode:
		if len(schema.Properties) == 0 {
			if schema.AdditionalProperties != nil && schema.AdditionalProperties.Schema != nil {
				for i := 0; i+1 < len(n.Content); i += 2 {
					findings = append(findings, unknownFields(file, object, path+"."+n.Content[i].Value, n.Content[i+1], schema.AdditionalProperties.Schema)...)
				}
			}
			return findings // a free-form map, or not an object: the API server says
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path + "." + k.Value
			prop, ok := schema.Properties[k.Value]
			if !ok {
				findings = append(findings, Finding{File: file, Line: k.Line, Object: object, Field: p, Message: fmt.Sprintf("Plumb has no such field (it has %s); remove it, or see docs/compat/flux.md for what Plumb does instead", known(schema))})
				continue
			}
			findings = append(findings, unknownFields(file, object, p, v, &prop)...)
		}
	case yaml.SequenceNode:
		if schema.Items == nil || schema.Items.Schema == nil {
			return nil
		}
		for i, c := range n.Content {
			findings = append(findings, unknownFields(file, object, fmt.Sprintf("%s[%d]", path, i), c, schema.Items.Schema)...)
		}
	}
	return findings
}

// known lists the fields a schema has, for the message.
func known(schema *apiextensionsv1.JSONSchemaProps) string {
	names := make([]string, 0, len(schema.Properties))
	for k := range schema.Properties {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
