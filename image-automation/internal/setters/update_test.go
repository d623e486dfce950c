package setters

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const digest = "sha256:0123abcd"

var testRefs = map[string]Ref{
	"apps:app":   {Name: "ghcr.io/acme/app", Tag: "1.2.0", Digest: digest},
	"apps:web":   {Name: "ghcr.io/acme/web", Tag: "2.0.0"},
	"apps:float": {Name: "ghcr.io/acme/float", Tag: "1.5"},
	"apps:odd":   {Name: "ghcr.io/acme/odd", Tag: "x #1"},
}

const (
	mApp       = `# {"$imagepolicy": "apps:app"}`
	mAppTag    = `# {"$imagepolicy": "apps:app:tag"}`
	mAppName   = `# {"$imagepolicy": "apps:app:name"}`
	mAppDigest = `# {"$imagepolicy": "apps:app:digest"}`
	mWeb       = `# {"$imagepolicy": "apps:web"}`
	mWebTag    = `# {"$imagepolicy": "apps:web:tag"}`

	appFull = "ghcr.io/acme/app:1.2.0@" + digest
	webFull = "ghcr.io/acme/web:2.0.0"
)

// ch builds an expected change without an object.
func ch(line int, policy, field, old, new string) Change {
	return Change{Line: line, Policy: policy, Field: field, Old: old, New: new}
}

func TestUpdateBytes(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string // "" means the input, unchanged
		changes  []Change
		missing  []Missing
		problems Problems
	}{
		{
			name:    "full reference with digest",
			in:      "image: ghcr.io/acme/app:1.0.0 " + mApp + "\n",
			want:    "image: " + appFull + " " + mApp + "\n",
			changes: []Change{ch(1, "apps:app", "", "ghcr.io/acme/app:1.0.0", appFull)},
		},
		{
			name:    "full reference without digest",
			in:      "image: ghcr.io/acme/web:1.0.0 " + mWeb + "\n",
			want:    "image: " + webFull + " " + mWeb + "\n",
			changes: []Change{ch(1, "apps:web", "", "ghcr.io/acme/web:1.0.0", webFull)},
		},
		{
			name: "name, tag and digest fields",
			in: "image:\n" +
				"  repository: ghcr.io/acme/old " + mAppName + "\n" +
				"  tag: 1.0.0 " + mAppTag + "\n" +
				"  digest: sha256:old " + mAppDigest + "\n",
			want: "image:\n" +
				"  repository: ghcr.io/acme/app " + mAppName + "\n" +
				"  tag: 1.2.0 " + mAppTag + "\n" +
				"  digest: " + digest + " " + mAppDigest + "\n",
			changes: []Change{
				ch(2, "apps:app", "name", "ghcr.io/acme/old", "ghcr.io/acme/app"),
				ch(3, "apps:app", "tag", "1.0.0", "1.2.0"),
				ch(4, "apps:app", "digest", "sha256:old", digest),
			},
		},
		{
			name: "flexible marker spacing",
			in: "a: old #{\"$imagepolicy\":\"apps:web\"}\n" +
				"b: old # {\"$imagepolicy\": \"apps:web\" }\n" +
				"c: old\t#\t{ \"$imagepolicy\" :  \"apps:web:tag\"\t}  \n",
			want: "a: " + webFull + " #{\"$imagepolicy\":\"apps:web\"}\n" +
				"b: " + webFull + " # {\"$imagepolicy\": \"apps:web\" }\n" +
				"c: 2.0.0\t#\t{ \"$imagepolicy\" :  \"apps:web:tag\"\t}  \n",
			changes: []Change{
				ch(1, "apps:web", "", "old", webFull),
				ch(2, "apps:web", "", "old", webFull),
				ch(3, "apps:web", "tag", "old", "2.0.0"),
			},
		},
		{
			name: "comments that are not markers",
			in: "a: old # {\"$imagepolicy\": \"apps\"}\n" +
				"b: old # {\"$imagepolicy\": \"apps:web:version\"}\n" +
				"c: old # {\"$imagepolicy\": \"Apps:web\"}\n" +
				"d: old # {\"$imagepolicy\": \"apps:web\"} and more\n" +
				"e: old # {\"imagepolicy\": \"apps:web\"}\n" +
				"f: old # {\"$imagepolicy\": \"apps:web:tag:x\"}\n" +
				"g: \"# {\\\"$imagepolicy\\\": \\\"apps:web\\\"}\"\n" +
				"h: |\n  echo # {\"$imagepolicy\": \"apps:web\"}\n" +
				"# {\"$imagepolicy\": \"apps:web\"}\n" +
				"i: old\n",
		},
		{
			name: "quoting styles kept",
			in: "a: \"ghcr.io/acme/web:1.0.0\" " + mWeb + "\n" +
				"b: 'ghcr.io/acme/web:1.0.0' " + mWeb + "\n" +
				"c: \"1.0.0\" " + mWebTag + "\n",
			want: "a: \"" + webFull + "\" " + mWeb + "\n" +
				"b: '" + webFull + "' " + mWeb + "\n" +
				"c: \"2.0.0\" " + mWebTag + "\n",
			changes: []Change{
				ch(1, "apps:web", "", "ghcr.io/acme/web:1.0.0", webFull),
				ch(2, "apps:web", "", "ghcr.io/acme/web:1.0.0", webFull),
				ch(3, "apps:web", "tag", "1.0.0", "2.0.0"),
			},
		},
		{
			name: "plain value quoted only when plain would change it",
			in: "a: latest # {\"$imagepolicy\": \"apps:float:tag\"}\n" +
				"b: 1.0 # {\"$imagepolicy\": \"apps:float:tag\"}\n" +
				"c: v1 # {\"$imagepolicy\": \"apps:odd:tag\"}\n" +
				"d: 'v1' # {\"$imagepolicy\": \"apps:odd:tag\"}\n" +
				"e: [v1 # {\"$imagepolicy\": \"apps:web\"}\n  ]\n",
			want: "a: \"1.5\" # {\"$imagepolicy\": \"apps:float:tag\"}\n" +
				"b: 1.5 # {\"$imagepolicy\": \"apps:float:tag\"}\n" +
				"c: \"x #1\" # {\"$imagepolicy\": \"apps:odd:tag\"}\n" +
				"d: 'x #1' # {\"$imagepolicy\": \"apps:odd:tag\"}\n" +
				"e: [" + webFull + " # {\"$imagepolicy\": \"apps:web\"}\n  ]\n",
			changes: []Change{
				ch(1, "apps:float", "tag", "latest", "1.5"),
				ch(2, "apps:float", "tag", "1.0", "1.5"),
				ch(3, "apps:odd", "tag", "v1", "x #1"),
				ch(4, "apps:odd", "tag", "v1", "x #1"),
				ch(5, "apps:web", "", "v1", webFull),
			},
		},
		{
			name: "sequence items with odd spacing",
			in: "images:\n" +
				"- ghcr.io/acme/app:1.0.0 " + mApp + "\n" +
				"-   \"ghcr.io/acme/web:1.0.0\"    " + mWeb + "   \n" +
				"- untouched # a comment\n",
			want: "images:\n" +
				"- " + appFull + " " + mApp + "\n" +
				"-   \"" + webFull + "\"    " + mWeb + "   \n" +
				"- untouched # a comment\n",
			changes: []Change{
				ch(2, "apps:app", "", "ghcr.io/acme/app:1.0.0", appFull),
				ch(3, "apps:web", "", "ghcr.io/acme/web:1.0.0", webFull),
			},
		},
		{
			name: "anchor and tag before the value",
			in:   "a: &img !!str ghcr.io/acme/web:1.0.0 " + mWeb + "\nb: *img\n",
			want: "a: &img !!str " + webFull + " " + mWeb + "\nb: *img\n",
			changes: []Change{
				ch(1, "apps:web", "", "ghcr.io/acme/web:1.0.0", webFull),
			},
		},
		{
			name: "empty value",
			in:   "tag: " + mWebTag + "\nlist:\n-   " + mWebTag + "\ntagged: !!str " + mWebTag + "\n",
			want: "tag: 2.0.0 " + mWebTag + "\nlist:\n- 2.0.0   " + mWebTag + "\ntagged: !!str 2.0.0 " + mWebTag + "\n",
			changes: []Change{
				ch(1, "apps:web", "tag", "", "2.0.0"),
				ch(3, "apps:web", "tag", "", "2.0.0"),
				ch(4, "apps:web", "tag", "", "2.0.0"),
			},
		},
		{
			name:    "CRLF line endings",
			in:      "a: 1\r\nimage: old " + mWeb + "\r\n\r\nb: 2 # note\r\n",
			want:    "a: 1\r\nimage: " + webFull + " " + mWeb + "\r\n\r\nb: 2 # note\r\n",
			changes: []Change{ch(2, "apps:web", "", "old", webFull)},
		},
		{
			name:    "multi-byte characters before the value",
			in:      "\xef\xbb\xbfnote: \"héllo wörld\"\n名前: old " + mWeb + "\n",
			want:    "\xef\xbb\xbfnote: \"héllo wörld\"\n名前: " + webFull + " " + mWeb + "\n",
			changes: []Change{ch(2, "apps:web", "", "old", webFull)},
		},
		{
			name: "marker on values that are not scalars",
			in: "base: &x [1]\nimage: " + mApp + "\n  name: x\n" +
				"tags: [a, b] " + mAppTag + "\n" +
				"ref: *x " + mAppName + "\n" +
				"block: | " + mApp + "\n  text\n" +
				"quoted: \"two\n  lines\" " + mWeb + "\n" +
				"other: old " + mWeb + "\n",
			want: "base: &x [1]\nimage: " + mApp + "\n  name: x\n" +
				"tags: [a, b] " + mAppTag + "\n" +
				"ref: *x " + mAppName + "\n" +
				"block: | " + mApp + "\n  text\n" +
				"quoted: \"two\n  lines\" " + mWeb + "\n" +
				"other: " + webFull + " " + mWeb + "\n",
			changes: []Change{ch(10, "apps:web", "", "old", webFull)},
			problems: Problems{
				{Line: 2, Policy: "apps:app", Reason: reasonNotScalar},
				{Line: 4, Policy: "apps:app", Reason: reasonNotScalar},
				{Line: 5, Policy: "apps:app", Reason: reasonAlias},
				{Line: 6, Policy: "apps:app", Reason: reasonBlock},
				{Line: 8, Policy: "apps:web", Reason: reasonMultiline},
			},
		},
		{
			name: "marker away from its value",
			in:   "image: " + mWeb + "\n  old\n",
			problems: Problems{
				{Line: 1, Policy: "apps:web", Reason: reasonNotOnLine},
			},
		},
		{
			name: "missing policy does not stop the others",
			in: "a: old # {\"$imagepolicy\": \"apps:gone\"}\n" +
				"b: old " + mWeb + "\n",
			want: "a: old # {\"$imagepolicy\": \"apps:gone\"}\n" +
				"b: " + webFull + " " + mWeb + "\n",
			changes: []Change{ch(2, "apps:web", "", "old", webFull)},
			missing: []Missing{{Line: 1, Policy: "apps:gone"}},
		},
		{
			name:     "digest marker without a digest",
			in:       "digest: sha256:old # {\"$imagepolicy\": \"apps:web:digest\"}\n",
			problems: Problems{{Line: 1, Policy: "apps:web", Reason: "policy has no digest"}},
		},
		{
			name: "values already up to date",
			in: "image: " + appFull + " " + mApp + "\n" +
				"tag: \"1.2.0\" " + mAppTag + "\n",
		},
		{
			name: "everything else preserved",
			in: "# leading comment\n" +
				"apiVersion: apps/v1   \n" +
				"kind: Deployment\n" +
				"\n\n" +
				"metadata: {name: app, namespace: shop}   # flow\n" +
				"spec:\n" +
				"    template:\n" +
				"        spec:\n" +
				"          containers:\n" +
				"             -   name: app # keep\n" +
				"                 image:    ghcr.io/acme/app:1.0.0    " + mApp + "\n" +
				"                 args: [\"--x\",   '--y']\n" +
				"        # trailing comment\n",
			want: "# leading comment\n" +
				"apiVersion: apps/v1   \n" +
				"kind: Deployment\n" +
				"\n\n" +
				"metadata: {name: app, namespace: shop}   # flow\n" +
				"spec:\n" +
				"    template:\n" +
				"        spec:\n" +
				"          containers:\n" +
				"             -   name: app # keep\n" +
				"                 image:    " + appFull + "    " + mApp + "\n" +
				"                 args: [\"--x\",   '--y']\n" +
				"        # trailing comment\n",
			changes: []Change{{
				Line:   12,
				Object: ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "app"},
				Policy: "apps:app", Old: "ghcr.io/acme/app:1.0.0", New: appFull,
			}},
		},
		{
			name: "multi-document file",
			in: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: shop\n" +
				"image: old " + mApp + "\n" +
				"--- # second\n" +
				"kind: CronJob\nmetadata:\n  name: job\n" +
				"image: old " + mWeb + "\n" +
				"...\n---\n" +
				"- old " + mWeb + "\n",
			want: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: shop\n" +
				"image: " + appFull + " " + mApp + "\n" +
				"--- # second\n" +
				"kind: CronJob\nmetadata:\n  name: job\n" +
				"image: " + webFull + " " + mWeb + "\n" +
				"...\n---\n" +
				"- " + webFull + " " + mWeb + "\n",
			changes: []Change{
				{Line: 6, Object: ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "app"},
					Policy: "apps:app", Old: "old", New: appFull},
				{Line: 11, Object: ObjectRef{Kind: "CronJob", Name: "job"}, Policy: "apps:web", Old: "old", New: webFull},
				ch(14, "apps:web", "", "old", webFull),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == "" {
				want = tc.in
			}
			out, changes, missing, err := UpdateBytes([]byte(tc.in), testRefs)
			var problems Problems
			if err != nil && !errors.As(err, &problems) {
				t.Fatalf("unexpected error: %v", err)
			}
			if string(out) != want {
				t.Errorf("output:\n got %q\nwant %q", out, want)
			}
			if !reflect.DeepEqual(changes, tc.changes) {
				t.Errorf("changes:\n got %+v\nwant %+v", changes, tc.changes)
			}
			if !reflect.DeepEqual(missing, tc.missing) {
				t.Errorf("missing:\n got %+v\nwant %+v", missing, tc.missing)
			}
			if !reflect.DeepEqual(problems, tc.problems) {
				t.Errorf("problems:\n got %+v\nwant %+v", problems, tc.problems)
			}
		})
	}
}

func TestUpdateBytesUnchangedIsSameSlice(t *testing.T) {
	for _, in := range []string{
		"image: ghcr.io/acme/app:1.0.0\n",
		"image: " + appFull + " " + mApp + "\n",
	} {
		b := []byte(in)
		out, changes, _, err := UpdateBytes(b, testRefs)
		if err != nil || len(changes) != 0 || &out[0] != &b[0] || len(out) != len(b) {
			t.Errorf("%q: got new content or changes (%v, %v)", in, changes, err)
		}
	}
}

func TestUpdateBytesNotYAML(t *testing.T) {
	in := []byte("image: [old " + mWeb + "\n")
	out, changes, _, err := UpdateBytes(in, testRefs)
	if !errors.Is(err, ErrNotYAML) {
		t.Fatalf("got error %v, want ErrNotYAML", err)
	}
	if !bytes.Equal(out, in) || changes != nil {
		t.Errorf("got output %q and changes %v for invalid YAML", out, changes)
	}
}

func TestParseMarker(t *testing.T) {
	tests := []struct {
		comment string
		want    marker
		ok      bool
	}{
		{`# {"$imagepolicy": "flux-system:podinfo"}`, marker{"flux-system:podinfo", ""}, true},
		{`{"$imagepolicy":"ns:a.b-c:tag"}`, marker{"ns:a.b-c", "tag"}, true},
		{`#  { "$imagepolicy" : "ns:app:name" } `, marker{"ns:app", "name"}, true},
		{`# {"$imagepolicy": "ns:app:digest"}`, marker{"ns:app", "digest"}, true},
		{`# {"$imagepolicy": "ns:app:"}`, marker{}, false},
		{`# {"$imagepolicy": ":app"}`, marker{}, false},
		{`# {"$imagepolicy": "ns:-app"}`, marker{}, false},
		{`# {"$imagepolicy": "ns:app", "x": 1}`, marker{}, false},
		{`# {"$imagepolicy": "ns:app"`, marker{}, false},
		{`# {'$imagepolicy': 'ns:app'}`, marker{}, false},
		{`# see {"$imagepolicy": "ns:app"}`, marker{}, false},
		{"# {\"$imagepolicy\": \"ns:app\"}\n# second", marker{}, false},
		{``, marker{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.comment, func(t *testing.T) {
			got, ok := parseMarker(tc.comment)
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestMarkerValue(t *testing.T) {
	ref := Ref{Name: "r/app", Tag: "1", Digest: "sha256:d"}
	tests := []struct {
		field, want string
		ref         Ref
	}{
		{FieldFull, "r/app:1@sha256:d", ref},
		{FieldFull, "r/app:1", Ref{Name: "r/app", Tag: "1"}},
		{FieldTag, "1", ref},
		{FieldName, "r/app", ref},
		{FieldDigest, "sha256:d", ref},
		{FieldDigest, "", Ref{Name: "r/app", Tag: "1"}},
		{FieldFull, "", Ref{Name: "r/app"}},
	}
	for _, tc := range tests {
		got, why := marker{policy: "a:b", field: tc.field}.value(tc.ref)
		if got != tc.want || (why == "") != (tc.want != "") {
			t.Errorf("%q of %+v: got %q (%s), want %q", tc.field, tc.ref, got, why, tc.want)
		}
	}
}

func TestRenderKeepsStyle(t *testing.T) {
	// Guard the double-quote path against values Go and YAML escape differently.
	for _, v := range []string{"a\"b", `a\b`, "tab\there", "nel\u0085x", "bell\x07", "é"} {
		in := "v: \"old\" " + mWebTag + "\n"
		refs := map[string]Ref{"apps:web": {Name: "n", Tag: v}}
		out, changes, _, err := UpdateBytes([]byte(in), refs)
		if err != nil || len(changes) != 1 {
			t.Fatalf("%q: %v %v", v, changes, err)
		}
		if !strings.HasSuffix(string(out), " "+mWebTag+"\n") {
			t.Errorf("%q: marker lost: %q", v, out)
		}
	}
}

func TestVerifyRejectsBadOutput(t *testing.T) {
	in := []byte("a: old " + mWeb + "\nb: [1, 2]\n")
	tests := []struct{ name, out string }{
		{"value read back differs", "a: other " + mWeb + "\nb: [1, 2]\n"},
		{"value became a mapping", "a: x: y " + mWeb + "\nb: [1, 2]\n"},
		{"other value changed", "a: " + webFull + " " + mWeb + "\nb: [1, 3]\n"},
		{"line moved", "a: " + webFull + " " + mWeb + "\n\nb: [1, 2]\n"},
		{"document added", "a: " + webFull + " " + mWeb + "\nb: [1, 2]\n---\nc: 1\n"},
		{"not YAML", "a: [" + webFull + " " + mWeb + "\nb: [1, 2]\n"},
	}
	p, err := plan(in, testRefs)
	if err != nil || len(p.edits) != 1 {
		t.Fatalf("plan: %v, %d edits", err, len(p.edits))
	}
	if err := verify(p.docs, splice(in, p.edits), p.edits); err != nil {
		t.Fatalf("the real output fails verification: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := verify(p.docs, []byte(tc.out), p.edits); err == nil {
				t.Error("verification passed")
			}
		})
	}
}

func TestProblemsError(t *testing.T) {
	err := error(Problems{{Line: 3, Policy: "a:b", Reason: "policy has no digest"}, {Line: 7, Policy: "a:c", Reason: reasonBlock}})
	want := "line 3: a:b: policy has no digest; line 7: a:c: value is a block scalar"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
}
