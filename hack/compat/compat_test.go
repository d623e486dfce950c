package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A CRD with an old served version (ignored), and in its storage version a leaf, a map, a
// free-form value, a nested object and an array of objects holding an object.
const tinyCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              oldField: {type: string}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status:
            type: object
            properties:
              ready: {type: boolean}
          spec:
            type: object
            properties:
              interval: {type: string}
              labels:
                type: object
                additionalProperties: {type: string}
              values:
                x-kubernetes-preserve-unknown-fields: true
              sourceRef:
                type: object
                properties:
                  kind: {type: string}
                  name: {type: string}
              patches:
                type: array
                items:
                  type: object
                  properties:
                    patch: {type: string}
                    target:
                      type: object
                      properties:
                        name: {type: string}
`

func TestParseCRD(t *testing.T) {
	k, err := parseCRD([]byte(tinyCRD))
	if err != nil {
		t.Fatal(err)
	}
	want := &Kind{Name: "Widget", Group: "example.com", Version: "v1", Fields: []string{
		"interval", "labels", "patches", "patches[].patch", "patches[].target", "patches[].target.name",
		"sourceRef", "sourceRef.kind", "sourceRef.name", "values",
	}}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if k, err := parseCRD([]byte("apiVersion: v1\nkind: ConfigMap\n")); k != nil || err != nil {
		t.Errorf("a ConfigMap: got %v, %v; want neither a kind nor an error", k, err)
	}
}

func TestCompare(t *testing.T) {
	flux, err := parseCRD([]byte(tinyCRD))
	if err != nil {
		t.Fatal(err)
	}
	plumb := &Kind{Name: "Widget", Fields: []string{"interval", "patches", "patches[].patch", "values", "extra"}}
	kr, err := compareKind(flux, plumb, map[string]string{"sourceRef": "Plumb does it otherwise"})
	if err != nil {
		t.Fatal(err)
	}
	if kr.Covered != 4 {
		t.Errorf("covered %d fields, want 4", kr.Covered)
	}
	want := []Missing{
		{Path: "labels", Reason: "not yet"},
		{Path: "patches[].target", Under: 1, Reason: "not yet"},
		{Path: "sourceRef", Under: 2, Reason: "Plumb does it otherwise"},
	}
	if diff := cmp.Diff(want, kr.Missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}

	// Without a Plumb kind, the kind is missing as a whole, with the reason given for "*".
	kr, err = compareKind(flux, nil, map[string]string{"*": "no such kind"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Missing{{Under: 10, Reason: "no such kind"}}, kr.Missing); diff != "" {
		t.Errorf("missing kind (-want +got):\n%s", diff)
	}

	// A reason for a field Flux does not have is refused, so reasons.yaml cannot go stale.
	if _, err := compareKind(flux, plumb, map[string]string{"sourceRef.namespace": "x"}); err == nil ||
		!strings.Contains(err.Error(), "Widget has no field sourceRef.namespace") {
		t.Errorf("a stale reason: got %v", err)
	}
	// So is a reason for a field Plumb has.
	if _, err := compareKind(flux, plumb, map[string]string{"values": "x"}); err == nil ||
		!strings.Contains(err.Error(), "Widget.values is covered by Plumb now") {
		t.Errorf("a reason for a covered field: got %v", err)
	}

	// A field Plumb's schema has but refuses is not covered, nor are the fields under it.
	kr, err = compareKind(flux, plumb, map[string]string{"patches": "refused: stalls"})
	if err != nil {
		t.Fatal(err)
	}
	if kr.Covered != 2 {
		t.Errorf("covered %d fields with patches refused, want 2", kr.Covered)
	}
	if i := slices.IndexFunc(kr.Missing, func(m Missing) bool { return m.Path == "patches" }); i < 0 ||
		kr.Missing[i].Reason != "refused: stalls" || kr.Missing[i].Under != 3 {
		t.Errorf("missing with patches refused: %+v", kr.Missing)
	}
}

func TestReplaceBetween(t *testing.T) {
	doc := "# Title\n\n" + beginMarker + "\nold table\n" + endMarker + "\n\n## After\n"
	got, err := replaceBetween([]byte(doc), "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\n" + beginMarker + "\nnew table\n" + endMarker + "\n\n## After\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := replaceBetween([]byte("# no markers\n"), "x"); err == nil {
		t.Error("a document without markers: no error")
	}
}
