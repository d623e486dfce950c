package setters

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// fuzzRefs adds values that are awkward to quote to the table-test refs.
var fuzzRefs = func() map[string]Ref {
	refs := maps.Clone(testRefs)
	refs["apps:weird"] = Ref{Name: "a: b", Tag: "'\"\\\t#", Digest: "- [x], {y}"}
	refs["apps:null"] = Ref{Name: "~", Tag: "true", Digest: "null"}
	return refs
}()

var fuzzSeeds = []string{
	"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: shop\nspec:\n  template:\n    spec:\n" +
		"      containers:\n      - name: app\n        image: ghcr.io/acme/app:1.0.0 " + mApp + "\n" +
		"      initContainers:\n        - image: \"ghcr.io/acme/web:1.0.0\" # {\"$imagepolicy\": \"apps:web\"}\n",
	"image:\n  repository: ghcr.io/acme/app # {\"$imagepolicy\": \"apps:app:name\"}\n  tag: '1.0.0' # {\"$imagepolicy\": \"apps:app:tag\"}\n" +
		"  digest: \"\" # {\"$imagepolicy\": \"apps:app:digest\"}\n",
	"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n- name: app\n  newName: ghcr.io/acme/app # {\"$imagepolicy\": \"apps:app:name\"}\n" +
		"  newTag: 1.0 # {\"$imagepolicy\": \"apps:float:tag\"}\n  digest: sha256:x # {\"$imagepolicy\": \"apps:weird:digest\"}\n",
	"a: 1\r\nimage: old " + mWeb + "\r\n---\r\nb: [x, old # {\"$imagepolicy\": \"apps:weird\"}\r\n  ]\r\n",
	"--- # doc\nx: &a !!str old # {\"$imagepolicy\": \"apps:null:tag\"}\ny: *a\n...\n---\n- old #{\"$imagepolicy\":\"apps:odd:tag\"}\n- {k: v} " + mApp + "\n",
	"tag: " + mWebTag + "\nlist:\n-   " + mWebTag + "\n- q\nblock: | " + mApp + "\n  text\nq: \"a\n  b\" " + mApp + "\n",
	"\xef\xbb\xbfname: é\n名前: old " + mWeb + "\rnext: old " + mWeb + "\u2028x: y\n",
	"image: # {\"$imagepolicy\": \"apps:gone\"}\n  nested: old # {\"$imagepolicy\": \"apps:gone:tag\"}\n",
}

func FuzzUpdateBytes(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		out, changes, _, err := UpdateBytes(in, fuzzRefs)
		if !bytes.Equal(in, orig) {
			t.Fatal("input was modified")
		}
		inDocs, parseErr := decodeAll(in)
		var problems Problems
		switch {
		case errors.Is(err, ErrNotYAML):
			if parseErr == nil || !bytes.Equal(out, in) || changes != nil {
				t.Fatalf("not-YAML result for content that parses (%v) or with output", parseErr)
			}
			return
		case errors.As(err, &problems):
			for _, p := range problems {
				if p.Reason == reasonLocate || strings.HasPrefix(p.Reason, "rewritten content") {
					t.Fatalf("line %d: %s", p.Line, p.Reason)
				}
			}
		case err != nil:
			t.Fatalf("unexpected error: %v", err)
		}
		if len(changes) == 0 {
			if !bytes.Equal(out, in) {
				t.Fatal("content changed without changes")
			}
			return
		}
		if parseErr != nil {
			t.Fatalf("changes for content that does not parse: %v", parseErr)
		}

		// The output parses and reads back the new values.
		outDocs, err := decodeAll(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		if len(outDocs) != len(inDocs) {
			t.Fatalf("%d documents became %d", len(inDocs), len(outDocs))
		}
		values := scalarsByLine(outDocs)
		for _, c := range changes {
			if !slices.Contains(values[c.Line], c.New) {
				t.Fatalf("line %d does not hold %q, only %q", c.Line, c.New, values[c.Line])
			}
		}

		// Outside the replaced spans every byte is the same, and each span held the old value.
		p, err := plan(in, fuzzRefs)
		if err != nil || len(p.edits) != len(changes) {
			t.Fatalf("plan disagrees with UpdateBytes: %v", err)
		}
		var restIn, restOut []byte
		last, shift, oldMarks, newMarks := 0, 0, 0, 0
		for _, e := range p.edits {
			span := in[e.start:e.end]
			if bytes.ContainsAny(span, "\r\n") {
				t.Fatalf("span %q crosses a line", span)
			}
			if e.start < last {
				t.Fatal("spans overlap")
			}
			if got := readScalar(t, span); got != e.change.Old {
				t.Fatalf("span %q reads %q, change says old value %q", span, got, e.change.Old)
			}
			if got := readScalar(t, []byte(e.text)); got != e.change.New {
				t.Fatalf("text %q reads %q, change says new value %q", e.text, got, e.change.New)
			}
			restIn = append(restIn, in[last:e.start]...)
			restOut = append(restOut, out[last+shift:e.start+shift]...)
			if !bytes.Equal(out[e.start+shift:e.start+shift+len(e.text)], []byte(e.text)) {
				t.Fatal("output does not hold the edit's text at its place")
			}
			if c, ok := newSource(out).trailingComment(e.change.Line, e.start+shift+len(e.text)); !ok {
				t.Fatalf("no comment after the new value %q", e.text)
			} else if m, ok := parseMarker(c); !ok || m.policy != e.change.Policy || m.field != e.change.Field {
				t.Fatalf("comment %q after the new value is not the change's marker", c)
			}
			oldMarks += bytes.Count(span, []byte(markerKey))
			newMarks += strings.Count(e.text, markerKey)
			shift += len(e.text) - (e.end - e.start)
			last = e.end
		}
		restIn = append(restIn, in[last:]...)
		restOut = append(restOut, out[last+shift:]...)
		if !bytes.Equal(restIn, restOut) {
			t.Fatalf("bytes outside the spans differ:\n%q\n%q", restIn, restOut)
		}
		// So every marker comment of the input is still there.
		if bytes.Count(out, []byte(markerKey)) != bytes.Count(in, []byte(markerKey))-oldMarks+newMarks {
			t.Fatal("marker comments lost or added")
		}

		// Running again changes nothing.
		again, more, _, _ := UpdateBytes(out, fuzzRefs)
		if len(more) != 0 || !bytes.Equal(again, out) {
			t.Fatalf("second run changed %+v", more)
		}
	})
}

// readScalar reads a lone scalar's value; an empty text is an empty value.
func readScalar(t *testing.T, text []byte) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(bytes.TrimSpace(text), &doc); err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	if len(doc.Content) == 0 {
		return ""
	}
	return doc.Content[0].Value
}

func scalarsByLine(docs []*yaml.Node) map[int][]string {
	values := map[int][]string{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			values[n.Line] = append(values[n.Line], n.Value)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	for _, d := range docs {
		walk(d)
	}
	return values
}
