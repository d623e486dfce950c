package kustomize

import (
	"errors"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

func TestClassify(t *testing.T) {
	cases := map[string]refClass{
		"../base":                         refLocal,
		"deploy.yaml":                     refLocal,
		"./github.com/org/repo":           refLocal,
		"bases/github.com":                refLocal,
		"github.com/org/repo//app?ref=v1": refNetwork,
		"GitHub.com:org/repo":             refNetwork,
		"https://example.com/app.yaml":    refNetwork,
		"http://127.0.0.1:8080/x.yaml":    refNetwork,
		"ssh://git@host/repo.git":         refNetwork,
		"git@host:org/repo.git//app":      refNetwork,
		"git::https://host/repo":          refNetwork,
		"file:///var/repo":                refDisk,
		"git::file:///var/repo":           refDisk,
	}
	for ref, want := range cases {
		if got := classify(ref); got != want {
			t.Errorf("classify(%q) = %d, want %d", ref, got, want)
		}
	}
}

func TestForeignRefsFollowLocalKustomizations(t *testing.T) {
	g := NewWithT(t)
	fs := memFS(t, map[string]string{
		"/app/kustomization.yaml": "resources:\n- ../base\n- cm.yaml\ncomponents:\n- ../comp\nbases:\n- ../old\n",
		// Deprecated fields kustomize still reads.
		"/old/kustomization.yaml": "bases:\n- https://example.com/old-base\npatchesStrategicMerge:\n- https://example.com/smp.yaml\n" +
			"- |\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, annotations: {a: \"https://example.com\"}}\n" +
			"patchesJson6902:\n- path: https://example.com/json.yaml\n  target: {kind: ConfigMap, name: c}\n",
		"/app/cm.yaml": configMap,
		"/base/kustomization.yaml": "resources:\n- github.com/org/repo//deploy?ref=v1\n" +
			"configMapGenerator:\n- name: c\n  files:\n  - key=https://example.com/f.txt\n",
		"/comp/kustomization.yaml": "kind: Component\npatches:\n- path: https://example.com/p.yaml\n",
		// Not reached from app: never read.
		"/other/kustomization.yaml": "resources:\n- https://example.com/unused.yaml\n",
	})
	refs := foreignRefs(fs, srcRoot+"/app")
	var got []string
	for _, r := range refs {
		got = append(got, r.String())
	}
	g.Expect(got).To(ConsistOf(
		"base/kustomization.yaml refers to github.com/org/repo//deploy?ref=v1",
		"base/kustomization.yaml refers to https://example.com/f.txt",
		"comp/kustomization.yaml refers to https://example.com/p.yaml",
		"old/kustomization.yaml refers to https://example.com/old-base",
		"old/kustomization.yaml refers to https://example.com/smp.yaml",
		"old/kustomization.yaml refers to https://example.com/json.yaml",
	))
}

func TestRemoteReferencesRefused(t *testing.T) {
	cases := []struct {
		name, resource string
		opts           Options
		msg            string
	}{
		{"remote bases off", "https://example.com/app.yaml", Options{Path: "app"},
			"app/kustomization.yaml refers to https://example.com/app.yaml: remote bases are turned off on this controller (--no-remote-bases)"},
		{"file URL even when remote bases are on", "file:///etc/repo//app", Options{Path: "app", RemoteBases: true},
			"app/kustomization.yaml refers to file:///etc/repo//app: file:// references are refused"},
		{"password kept out of the message", "https://user:s3cret@example.com/app.yaml", Options{Path: "app"},
			"refers to https://redacted@example.com/app.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			tree := NewTree(memFS(t, map[string]string{"/app/kustomization.yaml": "resources:\n- " + c.resource + "\n"}))
			_, err := tree.Build(c.opts)
			g.Expect(errors.Is(err, ErrBuild)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring(c.msg))
			g.Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
		})
	}
}

// gitServer serves the bare repositories of a folder over smart HTTP on loopback, through the
// git program's own http-backend.
func gitServer(t *testing.T) (root, url string) {
	t.Helper()
	git := testenv.NeedTool(t, "git")
	root = t.TempDir()
	srv := httptest.NewServer(&cgi.Handler{
		Path: git, Args: []string{"http-backend"},
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
		Stderr: io.Discard, // kustomize first asks for a URL as a file, which the backend refuses
	})
	t.Cleanup(srv.Close)
	return root, srv.URL
}

// commitRepo creates the bare repository root/name.git holding files on branch main.
func commitRepo(t *testing.T, root, name string, files map[string]string) {
	t.Helper()
	work := t.TempDir()
	run := func(dir string, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run(work, "init", "-q", "-b", "main")
	for n, c := range files {
		p := filepath.Join(work, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(work, "add", ".")
	run(work, "commit", "-q", "-m", "base")
	run(root, "clone", "-q", "--bare", work, name+".git")
}

func TestRemoteBasesFetched(t *testing.T) {
	g := NewWithT(t)
	root, gitURL := gitServer(t)
	commitRepo(t, root, "bases", map[string]string{
		"web/kustomization.yaml": "resources:\n- deployment.yaml\n",
		"web/deployment.yaml":    deployment,
	})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cm.yaml" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(configMap))
	}))
	defer files.Close()

	tree := NewTree(memFS(t, map[string]string{
		"/app/kustomization.yaml": "resources:\n- " + gitURL + "/bases.git//web?ref=main\n- " + files.URL + "/cm.yaml\n",
	}))
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "kustomize-*"))
	res, err := tree.Build(Options{Path: "app", TargetNamespace: "shop", RemoteBases: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids(res)).To(ConsistOf("ConfigMap/shop/cfg", "Deployment/shop/web"))
	g.Expect(res.Remote).To(BeTrue())
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "kustomize-*"))
	g.Expect(after).To(ConsistOf(before), "the clone is removed after the build")

	// A base that does not exist fails the build with kustomize's reason, no crash.
	tree = NewTree(memFS(t, map[string]string{
		"/app/kustomization.yaml": "resources:\n- " + gitURL + "/missing.git//web?ref=main\n",
	}))
	_, err = tree.Build(Options{Path: "app", RemoteBases: true})
	g.Expect(errors.Is(err, ErrBuild)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("missing.git"))

	// A local build is not marked remote.
	tree = NewTree(memFS(t, map[string]string{"/app/cm.yaml": configMap}))
	res, err = tree.Build(Options{Path: "app", RemoteBases: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Remote).To(BeFalse())
}

// Any kustomization file is read without a panic, and only references kustomize would fetch
// or read from disk are reported.
func FuzzForeignRefs(f *testing.F) {
	f.Add("resources:\n- ../base\n- github.com/org/repo\n")
	f.Add("components: [https://x/y]\nconfigMapGenerator:\n- files: [k=git@h:r]\n")
	f.Add("bases: [../a, ../../b]\npatchesStrategicMerge: [\"|\\n x\"]\n")
	f.Fuzz(func(t *testing.T, k string) {
		fs := filesys.MakeFsInMemory()
		_ = fs.MkdirAll(srcRoot + "/a/b")
		_ = fs.WriteFile(srcRoot+"/a/b/kustomization.yaml", []byte(k))
		_ = fs.WriteFile(srcRoot+"/a/kustomization.yaml", []byte(k))
		for _, r := range foreignRefs(fs, srcRoot+"/a/b") {
			if classify(r.ref) == refLocal {
				t.Fatalf("local reference reported: %q", r.ref)
			}
		}
	})
}
