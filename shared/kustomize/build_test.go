package kustomize

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/plumb-dev/plumb/shared/artifact"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.invalid/web:1.0.0
`

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  size: "${SIZE:=small}"
  region: "${REGION}"
  literal: "$${KEEP}"
`

func memFS(t testing.TB, files map[string]string) filesys.FileSystem {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	for name, content := range files {
		name = srcRoot + name
		if err := fs.MkdirAll(pathDir(name)); err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile(name, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	return fs
}

func pathDir(p string) string { return p[:strings.LastIndex(p, "/")+1] }

// ids lists the built objects as Kind/namespace/name.
func ids(r *Result) []string {
	var out []string
	for _, o := range r.Objects {
		out = append(out, describe(o))
	}
	return out
}

func TestBuild(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string
		opts   Options
		ids    []string
		check  func(g *WithT, r *Result)
		errMsg string
	}{
		{
			name:  "generated kustomization lists manifests and skips other YAML",
			files: map[string]string{"/apps/web.yaml": deployment, "/apps/cfg.yaml": configMap, "/apps/values.yaml": "replicas: 3\n", "/apps/README.md": "# hi"},
			opts:  Options{Path: "apps"},
			ids:   []string{"ConfigMap/cfg", "Deployment/web"},
		},
		{
			name: "subfolders with a kustomization of their own are built as bases",
			files: map[string]string{
				"/apps/web.yaml":                deployment,
				"/apps/base/kustomization.yaml": "resources: [cfg.yaml]\nnamePrefix: base-\n",
				"/apps/base/cfg.yaml":           configMap,
				"/apps/base/ignored.yaml":       deployment,
			},
			opts: Options{Path: "./apps"},
			ids:  []string{"ConfigMap/base-cfg", "Deployment/web"},
		},
		{
			name:  "spec overlays: namespace, prefix, suffix, labels, annotations, images",
			files: map[string]string{"/web.yaml": deployment},
			opts: Options{
				TargetNamespace: "shop", NamePrefix: "p-", NameSuffix: "-s",
				Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"note": "x"},
				Images: []kustypes.Image{{Name: "registry.example.invalid/web", NewTag: "2.0.0"}},
			},
			ids: []string{"Deployment/shop/p-web-s"},
			check: func(g *WithT, r *Result) {
				d := r.Objects[0]
				g.Expect(d.GetLabels()).To(HaveKeyWithValue("team", "a"))
				g.Expect(d.GetAnnotations()).To(HaveKeyWithValue("note", "x"))
				sel, _, _ := unstructuredString(d.Object, "spec", "selector", "matchLabels", "team")
				g.Expect(sel).To(BeEmpty(), "labels do not reach selectors")
				img, _, _ := unstructuredString(d.Object, "spec", "template", "spec", "containers", "0", "image")
				g.Expect(img).To(Equal("registry.example.invalid/web:2.0.0"))
			},
		},
		{
			name: "buildMetadata: origin and transformer annotations relative to the path",
			files: map[string]string{
				"/apps/web.yaml":                deployment,
				"/apps/base/kustomization.yaml": "resources: [cfg.yaml, ../../common/cfg.yaml]\nnamePrefix: base-\n",
				"/apps/base/cfg.yaml":           configMap,
				"/common/cfg.yaml":              strings.Replace(configMap, "name: cfg", "name: common", 1),
			},
			opts: Options{Path: "apps", NamePrefix: "p-", BuildMetadata: []string{"originAnnotations", "transformerAnnotations"}},
			ids:  []string{"ConfigMap/p-base-cfg", "ConfigMap/p-base-common", "Deployment/p-web"},
			check: func(g *WithT, r *Result) {
				a := r.Objects[0].GetAnnotations()
				g.Expect(a).To(HaveKeyWithValue("config.kubernetes.io/origin", "path: base/cfg.yaml\n"))
				g.Expect(a).To(HaveKeyWithValue("alpha.config.kubernetes.io/transformations",
					"- configuredBy:\n    apiVersion: builtin\n    kind: PrefixTransformer\n  configuredIn: base/kustomization.yaml\n"+
						"- configuredBy:\n    apiVersion: builtin\n    kind: PrefixTransformer\n  configuredIn: kustomization.yaml\n"))
				g.Expect(r.Objects[1].GetAnnotations()).To(HaveKeyWithValue("config.kubernetes.io/origin", "path: ../common/cfg.yaml\n"))
				g.Expect(r.Objects[2].GetAnnotations()).To(HaveKeyWithValue("config.kubernetes.io/origin", "path: web.yaml\n"))
			},
		},
		{
			name:  "without buildMetadata, no build annotations",
			files: map[string]string{"/web.yaml": deployment},
			ids:   []string{"Deployment/web"},
			check: func(g *WithT, r *Result) {
				g.Expect(r.Objects[0].GetAnnotations()).NotTo(HaveKey("config.kubernetes.io/origin"))
			},
		},
		{
			name:  "strategic merge and JSON 6902 patches",
			files: map[string]string{"/web.yaml": deployment, "/cfg.yaml": configMap},
			opts: Options{Patches: []Patch{
				{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"},
				{Patch: `[{"op": "add", "path": "/data/extra", "value": "yes"}]`, Target: Selector("", "v1", "ConfigMap", "cfg", "", "", "")},
			}},
			ids: []string{"ConfigMap/cfg", "Deployment/web"},
			check: func(g *WithT, r *Result) {
				g.Expect(r.Objects[1].Object["spec"].(map[string]any)["replicas"]).To(BeNumerically("==", 3))
				g.Expect(r.Objects[0].Object["data"]).To(HaveKeyWithValue("extra", "yes"))
			},
		},
		{
			name: "components",
			files: map[string]string{
				"/app/kustomization.yaml":       "resources: [web.yaml]\n",
				"/app/web.yaml":                 deployment,
				"/app/extra/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [cfg.yaml]\n",
				"/app/extra/cfg.yaml":           configMap,
			},
			opts: Options{Path: "app", Components: []string{"extra"}},
			ids:  []string{"ConfigMap/cfg", "Deployment/web"},
		},
		{
			name: "a missing component fails the build",
			files: map[string]string{
				"/app/kustomization.yaml": "resources: [web.yaml]\n",
				"/app/web.yaml":           deployment,
			},
			opts:   Options{Path: "app", Components: []string{"gone"}},
			errMsg: "gone",
		},
		{
			name: "ignoreMissingComponents skips a missing component and keeps the others",
			files: map[string]string{
				"/app/kustomization.yaml":       "resources: [web.yaml]\n",
				"/app/web.yaml":                 deployment,
				"/app/extra/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [cfg.yaml]\n",
				"/app/extra/cfg.yaml":           configMap,
			},
			opts: Options{Path: "app", Components: []string{"gone", "extra"}, IgnoreMissingComponents: true},
			ids:  []string{"ConfigMap/cfg", "Deployment/web"},
		},
		{
			name:  "common metadata: own metadata only, replacing values, after substitution",
			files: map[string]string{"/web.yaml": strings.Replace(deployment, "labels: {app: web}\nspec:", "labels: {app: web, team: old}\n  annotations: {note: \"${NOTE}\"}\nspec:", 1)},
			opts: Options{
				Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"note": "${KEEP}"},
				Vars: map[string]string{"NOTE": "from-var"},
			},
			ids: []string{"Deployment/web"},
			check: func(g *WithT, r *Result) {
				d := r.Objects[0]
				g.Expect(d.GetLabels()).To(Equal(map[string]string{"app": "web", "team": "a"}))
				g.Expect(d.GetAnnotations()).To(Equal(map[string]string{"note": "${KEEP}"}), "set after substitution, as Flux does")
				tmpl, _, _ := unstructuredString(d.Object, "spec", "template", "metadata", "annotations", "note")
				g.Expect(tmpl).To(BeEmpty(), "pod templates are not annotated")
			},
		},
		{
			name:  "variables with defaults and escapes",
			files: map[string]string{"/cfg.yaml": configMap},
			opts:  Options{Vars: map[string]string{"REGION": "eu"}},
			ids:   []string{"ConfigMap/cfg"},
			check: func(g *WithT, r *Result) {
				g.Expect(r.Objects[0].Object["data"]).To(Equal(map[string]any{"size": "small", "region": "eu", "literal": "${KEEP}"}))
			},
		},
		{
			name:  "no substitution without postBuild",
			files: map[string]string{"/cfg.yaml": configMap},
			ids:   []string{"ConfigMap/cfg"},
			check: func(g *WithT, r *Result) {
				g.Expect(r.Objects[0].Object["data"]).To(HaveKeyWithValue("size", "${SIZE:=small}"))
			},
		},
		{
			name:   "missing path",
			files:  map[string]string{"/cfg.yaml": configMap},
			opts:   Options{Path: "nope"},
			errMsg: `path "nope" is not a folder`,
		},
		{
			name:   "broken YAML names the file",
			files:  map[string]string{"/apps/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n"},
			opts:   Options{Path: "apps"},
			errMsg: "apps/bad.yaml",
		},
		{
			name: "other YAML is left out",
			files: map[string]string{
				"/apps/cfg.yaml":    configMap,
				"/apps/values.yaml": "replicas: 2\n",
				"/apps/.drone.yml":  "kind: pipeline\nsteps: []\n",
			},
			opts: Options{Path: "apps", Vars: map[string]string{"REGION": "eu"}},
			ids:  []string{"ConfigMap/cfg"},
		},
		{
			name:   "an object without kind is an error, not skipped",
			files:  map[string]string{"/apps/cfg.yaml": configMap, "/apps/typo.yaml": "apiVersion: v1\nkindd: ConfigMap\nmetadata: {name: typo}\n"},
			opts:   Options{Path: "apps"},
			errMsg: `apps/typo.yaml: a document has apiVersion "v1" but no kind`,
		},
		{
			name:   "an object without apiVersion is an error, not skipped",
			files:  map[string]string{"/apps/cfg.yaml": configMap, "/apps/typo.yaml": "apiVersoin: v1\nkind: ConfigMap\nmetadata: {name: typo}\n"},
			opts:   Options{Path: "apps"},
			errMsg: "apps/typo.yaml: ConfigMap typo has no apiVersion",
		},
		{
			name:   "kustomization naming a missing file",
			files:  map[string]string{"/apps/kustomization.yaml": "resources: [gone.yaml]\n"},
			opts:   Options{Path: "apps"},
			errMsg: "kustomize build ./apps",
		},
		{
			name:   "a value that breaks the YAML names the object",
			files:  map[string]string{"/cfg.yaml": configMap},
			opts:   Options{Vars: map[string]string{"REGION": "x\"\n  broken: [\n"}},
			errMsg: "ConfigMap/cfg after variable substitution",
		},
		{
			name:   "a bad variable reference",
			files:  map[string]string{"/cfg.yaml": strings.Replace(configMap, "${REGION}", "${RE-GION}", 1)},
			opts:   Options{Vars: map[string]string{}},
			errMsg: "ConfigMap/cfg",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r, err := NewTree(memFS(t, tc.files)).Build(tc.opts)
			if tc.errMsg != "" {
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, ErrBuild)).To(BeTrue(), "%v", err)
				g.Expect(err.Error()).To(ContainSubstring(tc.errMsg))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ids(r)).To(Equal(tc.ids))
			g.Expect(r.Digest).To(HavePrefix("sha256:"))
			if tc.check != nil {
				tc.check(g, r)
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	g := NewWithT(t)
	files := map[string]string{"/web.yaml": deployment, "/cfg.yaml": configMap}
	a, err := NewTree(memFS(t, files)).Build(Options{Vars: map[string]string{"REGION": "eu"}})
	g.Expect(err).NotTo(HaveOccurred())
	b, err := NewTree(memFS(t, files)).Build(Options{Vars: map[string]string{"REGION": "eu"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.Digest).To(Equal(b.Digest))
	c, err := NewTree(memFS(t, files)).Build(Options{Vars: map[string]string{"REGION": "us"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Digest).NotTo(Equal(a.Digest))

	// Values of Secrets are masked in the digest; their Secrets' versions stand for them.
	secret := func(v, version string) string {
		r, err := NewTree(memFS(t, files)).Build(Options{Vars: map[string]string{"REGION": v}, Secrets: []string{v}, SecretVersions: []string{version}})
		g.Expect(err).NotTo(HaveOccurred())
		return r.Digest
	}
	g.Expect(secret("eu-secret", "1")).To(Equal(secret("us-secret", "1")), "a guess of the secret could be tested against the digest")
	g.Expect(secret("eu-secret", "1")).NotTo(Equal(secret("eu-secret", "2")))

	// So are values that JSON escapes (a quote, a backslash, a newline).
	escaped := func(v string) string {
		files := map[string]string{"/s.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  token: " + strconv.Quote(v) + "\n"}
		r, err := NewTree(memFS(t, files)).Build(Options{Secrets: []string{v}})
		g.Expect(err).NotTo(HaveOccurred())
		return r.Digest
	}
	g.Expect(escaped("a\"b\\c\nd")).To(Equal(escaped("x\"y\\z\nw")), "a guess of the secret could be tested against the digest")

	// And values that parsing the substituted YAML changes: 0123 becomes the number 83.
	pin := func(v string) string {
		files := map[string]string{"/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pin\ndata:\n  pin: ${PIN}\n"}
		r, err := NewTree(memFS(t, files)).Build(Options{Vars: map[string]string{"PIN": v}, Secrets: []string{v}})
		g.Expect(err).NotTo(HaveOccurred())
		return r.Digest
	}
	g.Expect(pin("0123")).To(Equal(pin("0456")), "a guess of the secret could be tested against the digest")

	// What is not secret is in the digest: the objects, and commonMetadata on substituted ones.
	plain := func(replicas string) string {
		files := map[string]string{"/web.yaml": strings.Replace(deployment, "replicas: 1", "replicas: "+replicas, 1)}
		r, err := NewTree(memFS(t, files)).Build(Options{})
		g.Expect(err).NotTo(HaveOccurred())
		return r.Digest
	}
	g.Expect(plain("1")).NotTo(Equal(plain("2")))
	labelled := func(team string) string {
		r, err := NewTree(memFS(t, files)).Build(Options{Vars: map[string]string{"REGION": "eu"}, Labels: map[string]string{"team": team}})
		g.Expect(err).NotTo(HaveOccurred())
		return r.Digest
	}
	g.Expect(labelled("a")).NotTo(Equal(labelled("b")))
}

func TestLoadFollowsFileLinks(t *testing.T) {
	g := NewWithT(t)
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	g.Expect(w.File("apps/web.yaml", false, int64(len(deployment)), strings.NewReader(deployment))).To(Succeed())
	g.Expect(w.Symlink("prod/web.yaml", "../apps/web.yaml")).To(Succeed())
	g.Expect(w.Close()).To(Succeed())
	tree, err := Load(&buf, artifact.DefaultLimits)
	g.Expect(err).NotTo(HaveOccurred())
	r, err := tree.Build(Options{Path: "prod"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids(r)).To(Equal([]string{"Deployment/web"}))
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	var cur any = obj
	for _, f := range fields {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[f]
		case []any:
			if f != "0" || len(c) == 0 {
				return "", false, nil
			}
			cur = c[0]
		default:
			return "", false, nil
		}
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// TestTreeIsShared: many builds from one loaded tree, of different folders and options, give
// the same results as builds from fresh trees.
func TestTreeIsShared(t *testing.T) {
	g := NewWithT(t)
	files := map[string]string{
		"/a/web.yaml": deployment, "/a/kustomization.yaml": "resources: [web.yaml]\n", "/b/cfg.yaml": configMap,
		"/c/kustomization.yaml": "resources: [../a]\nnamePrefix: c-\n",
	}
	shared := NewTree(memFS(t, files))
	for i := 0; i < 3; i++ {
		for _, opts := range []Options{{Path: "a"}, {Path: "b", NameSuffix: "-x"}, {Path: "c", TargetNamespace: "n"}, {Path: "a", NamePrefix: "p-"}} {
			fresh, err := NewTree(memFS(t, files)).Build(opts)
			g.Expect(err).NotTo(HaveOccurred())
			got, err := shared.Build(opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Digest).To(Equal(fresh.Digest), "%+v", opts)
		}
	}
	g.Expect(shared.fs.Exists("/plumb-build/1")).To(BeFalse(), "wrappers are removed")
	g.Expect(shared.fs.Exists(srcRoot+"/b/kustomization.yaml")).To(BeFalse(), "the artifact's tree is never written")
}

// BenchmarkBuild builds one app of hack/bench's apply scenario (a Deployment, Service,
// ServiceAccount and ConfigMap in a folder without a kustomization) as apply-controller does:
// into a namespace (its ownership labels are set after the build).
func BenchmarkBuild(b *testing.B) {
	tree := NewTree(memFS(b, map[string]string{
		"/app/deployment.yaml":     deployment,
		"/app/service.yaml":        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 9898}]\n",
		"/app/serviceaccount.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n",
		"/app/configmap.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  app: web\n",
	}))
	opts := Options{Path: "app", TargetNamespace: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		r, err := tree.Build(opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Objects) != 4 {
			b.Fatalf("built %d objects, want 4", len(r.Objects))
		}
	}
}
