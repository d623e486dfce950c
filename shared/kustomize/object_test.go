package kustomize

import (
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/yaml"
)

// objectSeeds are resources whose values YAML and JSON could disagree on.
var objectSeeds = []string{
	`apiVersion: example.com/v1
kind: Thing
metadata: {name: t, labels: {"on": "yes"}}
spec:
  int: 3
  big: 12345678901234567890
  neg: -7
  float: 0.5
  whole: 2.0
  exp: 1e3
  bool: true
  word: yes
  octal: 0755
  hex: 0x1F
  date: 2001-12-14
  stamp: 2001-12-14T21:59:43.10-05:00
  none: null
  tilde: ~
  empty: {}
  nothing: []
  list: [1, "2", a, {b: c}, [d]]
  multi: |
    line1
    line2
  quoted: "a \"b\" \\ c\td"
  html: "<a href='x'>&</a>"
  unicode: "é ☃ \u2028"
  binary: !!binary aGVsbG8=
`,
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n  b: |-\n    x\n",
}

// FuzzObjectOf checks that objectOf, which decodes a built resource's JSON, gives what
// kustomize's YAML of it parsed again gives (what builds did before), value for value.
func FuzzObjectOf(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add(s)
	}
	rf := provider.NewDefaultDepProvider().GetResourceFactory()
	f.Fuzz(func(t *testing.T, in string) {
		resources, err := rf.SliceFromBytes([]byte(in))
		if err != nil {
			return
		}
		for _, res := range resources {
			y, err := res.AsYAML()
			if err != nil {
				continue
			}
			var want map[string]any
			if err := yaml.Unmarshal(y, &want); err != nil {
				continue
			}
			got, err := objectOf(res)
			if err != nil {
				t.Fatalf("objectOf failed where the YAML did not: %v\n%s", err, y)
			}
			NewWithT(t).Expect(got.Object).To(Equal(want), string(y))
		}
	})
}

func TestObjectOfSeeds(t *testing.T) {
	g := NewWithT(t)
	rf := provider.NewDefaultDepProvider().GetResourceFactory()
	resources, err := rf.SliceFromBytes([]byte(objectSeeds[0]))
	g.Expect(err).NotTo(HaveOccurred())
	obj, err := objectOf(resources[0])
	g.Expect(err).NotTo(HaveOccurred())
	spec := obj.Object["spec"].(map[string]any)
	// The seed reaches the cases it names: numbers as JSON has them, YAML 1.1's words as strings.
	g.Expect(spec).To(HaveKeyWithValue("int", float64(3)))
	g.Expect(spec).To(HaveKeyWithValue("word", "yes"))
	g.Expect(spec).To(HaveKeyWithValue("multi", "line1\nline2\n"))
	g.Expect(spec).To(HaveKeyWithValue("none", BeNil()))
}
