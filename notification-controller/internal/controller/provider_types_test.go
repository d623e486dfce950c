package controller

import (
	"os"
	"slices"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestProviderTypesMatchTheAPI keeps the table of types and the CRD's enum of spec.type the
// same: a type in one and not the other is either refused by the API server or unknown to the
// controller.
func TestProviderTypesMatchTheAPI(t *testing.T) {
	raw, err := os.ReadFile("../../config/crd/bases/notification.plumb.dev_providers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	var enum []string
	for _, e := range crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["type"].Enum {
		var s string
		if err := yaml.Unmarshal(e.Raw, &s); err != nil {
			t.Fatal(err)
		}
		enum = append(enum, s)
	}
	var table []string
	for name, typ := range providerTypes {
		if typ.sender == nil {
			t.Errorf("type %s has no sender", name)
		}
		table = append(table, name)
	}
	slices.Sort(enum)
	slices.Sort(table)
	if !slices.Equal(enum, table) {
		t.Fatalf("spec.type enum %v, table of types %v", enum, table)
	}
}
