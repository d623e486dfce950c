package build

import (
	"archive/tar"
	"context"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/plumb-dev/plumb/shared/testing/ocitest"
)

// root is a copy of testdata/root: a one-module workspace whose component "tiny" builds in a
// second, so the tests cross-compile for two platforms without compiling a controller.
var root string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "plumb-images-test-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		if err := newTinyRoot(dir); err != nil {
			panic(err)
		}
		root = dir
		return m.Run()
	}())
}

// newTinyRoot copies testdata/root to dir and makes it a module of its own, outside any workspace.
func newTinyRoot(dir string) error {
	if err := os.CopyFS(dir, os.DirFS("../testdata/root")); err != nil {
		return err
	}
	// GOWORK=off for the go build children: the copy is its own main module.
	if err := os.Setenv("GOWORK", "off"); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/tiny\n\ngo 1.26.0\n"), 0o644)
}

const bundle = "-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n"

func testBuilder(t *testing.T) Builder {
	t.Helper()
	ca := filepath.Join(root, "ca.pem")
	if err := os.WriteFile(ca, []byte(bundle), 0o644); err != nil {
		t.Fatal(err)
	}
	return Builder{Root: root, Version: "v1.2.3", CACerts: ca}
}

var built struct {
	once sync.Once
	idx  v1.ImageIndex
	err  error
}

// tinyIndex builds tiny for DefaultPlatforms once for all the tests.
func tinyIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	b := testBuilder(t)
	built.once.Do(func() { built.idx, built.err = b.Build(context.Background(), Controller("tiny"), DefaultPlatforms) })
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.idx
}

func TestIndexHasOneOCIImagePerPlatform(t *testing.T) {
	idx := tinyIndex(t)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s", im.MediaType)
	}
	var got []string
	for _, d := range im.Manifests {
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: media type %s", d.Digest, d.MediaType)
		}
		got = append(got, d.Platform.String())
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, got); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

func TestImageConfigRunsManagerAsNonRoot(t *testing.T) {
	idx := tinyIndex(t)
	for _, p := range DefaultPlatforms {
		t.Run(p.String(), func(t *testing.T) {
			img := imageFor(t, idx, p)
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			want := v1.Config{
				Entrypoint: []string{"/manager"},
				User:       "65532:65532",
				WorkingDir: "/",
				Labels: map[string]string{
					"org.opencontainers.image.source":  DefaultSource,
					"org.opencontainers.image.title":   "tiny",
					"org.opencontainers.image.version": "v1.2.3",
				},
			}
			if diff := cmp.Diff(want, cf.Config); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if cf.OS != "linux" || cf.Architecture != p.Architecture {
				t.Errorf("config platform %s/%s, want %s", cf.OS, cf.Architecture, p)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("config media type %s", m.Config.MediaType)
			}
			for _, l := range m.Layers {
				if l.MediaType != types.OCILayer {
					t.Errorf("layer %s: media type %s", l.Digest, l.MediaType)
				}
			}
		})
	}
}

func TestLayersHoldManagerAndBaseFiles(t *testing.T) {
	idx := tinyIndex(t)
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, p := range DefaultPlatforms {
		t.Run(p.String(), func(t *testing.T) {
			layers, err := imageFor(t, idx, p).Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 2 {
				t.Fatalf("%d layers, want base + binary", len(layers))
			}
			bin := entries(t, layers[1])
			if len(bin) != 1 {
				t.Fatalf("binary layer holds %d entries, want 1", len(bin))
			}
			h := bin[0].Header
			if h.Name != "manager" || h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != UID || h.Gid != GID || h.ModTime.Unix() != 0 {
				t.Errorf("binary entry %q type %c mode %o owner %d:%d time %s", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime)
			}
			f, err := elf.NewFile(strings.NewReader(bin[0].data))
			if err != nil {
				t.Fatalf("manager is not an ELF binary: %v", err)
			}
			if f.Machine != machines[p.Architecture] {
				t.Errorf("manager built for %s, want %s", f.Machine, machines[p.Architecture])
			}

			base := map[string]entry{}
			for _, e := range entries(t, layers[0]) {
				base[e.Name] = e
			}
			if !strings.Contains(base["etc/passwd"].data, "nonroot:x:65532:65532:") {
				t.Errorf("etc/passwd does not name the non-root user:\n%s", base["etc/passwd"].data)
			}
			if got := base["etc/ssl/certs/ca-certificates.crt"].data; got != bundle {
				t.Errorf("CA bundle %q, want %q", got, bundle)
			}
			if tmp := base["tmp/"]; tmp.Mode != 0o1777 {
				t.Errorf("tmp/ mode %o, want 1777", tmp.Mode)
			}
		})
	}
}

func TestBuildIsReproducible(t *testing.T) {
	first, err := tinyIndex(t).Digest()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := testBuilder(t).Build(context.Background(), Controller("tiny"), DefaultPlatforms)
	if err != nil {
		t.Fatal(err)
	}
	second, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("two builds of the same source: %s and %s", first, second)
	}
}

func TestBuildRefusesWhatItCannotBuild(t *testing.T) {
	for _, tc := range []struct {
		name      string
		component string
		platforms []v1.Platform
		want      string
	}{
		{"no platforms", "tiny", nil, "no platforms"},
		{"not linux", "tiny", []v1.Platform{{OS: "windows", Architecture: "amd64"}}, "only linux"},
		{"unknown variant", "tiny", []v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v9"}}, "not supported"},
		{"no such component", "missing", DefaultPlatforms[:1], "go build ./missing/cmd for linux/amd64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(context.Background(), root, Controller(tc.component), tc.platforms)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestGoEnv(t *testing.T) {
	for _, tc := range []struct {
		platform string
		want     []string
	}{
		{"linux/amd64", []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}},
		{"linux/arm64/v8", []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}},
		{"linux/arm/v7", []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"}},
		{"linux/amd64/v3", []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v3"}},
	} {
		t.Run(tc.platform, func(t *testing.T) {
			p, err := v1.ParsePlatform(tc.platform)
			if err != nil {
				t.Fatal(err)
			}
			got, err := goEnv(*p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLayerDigestDependsOnlyOnContent(t *testing.T) {
	files := []file{{name: "a/", mode: 0o755, dir: true}, {name: "a/b", mode: 0o644, data: []byte("b")}}
	one, err := layerOf(files)
	if err != nil {
		t.Fatal(err)
	}
	two, err := layerOf(files)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := one.Digest()
	d2, _ := two.Digest()
	if d1 != d2 {
		t.Errorf("same files, digests %s and %s", d1, d2)
	}
}

func TestPushThenPullByDigest(t *testing.T) {
	idx := tinyIndex(t)
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	tag, err := name.NewTag(reg.Host + "/plumb/tiny:v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Push(context.Background(), idx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(reg.Host) + `/plumb/tiny@sha256:[0-9a-f]{64}$`).MatchString(ref.String()) {
		t.Errorf("pushed reference %s, want <repo>@sha256:<hex>", ref)
	}

	pulled, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if got, _ := pulled.Digest(); got != want {
		t.Errorf("pulled index %s, pushed %s", got, want)
	}
	arm := DefaultPlatforms[1]
	img, err := remote.Image(ref, remote.WithPlatform(arm))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" || cf.Config.User != "65532:65532" {
		t.Errorf("pulled image for %s: architecture %s, user %q", arm, cf.Architecture, cf.Config.User)
	}
	wantImg, _ := imageFor(t, idx, arm).Digest()
	if got, _ := img.Digest(); got != wantImg {
		t.Errorf("pulled %s image %s, pushed %s", arm, got, wantImg)
	}
	byTag, err := remote.Head(tag)
	if err != nil {
		t.Fatal(err)
	}
	if byTag.Digest != want {
		t.Errorf("tag points at %s, want %s", byTag.Digest, want)
	}
}

func TestPinRendersBaseWithDigest(t *testing.T) {
	ref, err := name.NewDigest("127.0.0.1:5000/plumb/tiny@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	deployment := filepath.Join(root, "tiny", "config", "manager", "deployment.yaml")
	before, err := os.ReadFile(deployment)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantArgs string
	}{
		{"image only", nil, "- --leader-elect\n"},
		{"extra args", []string{"--no-remote-bases"}, "- --leader-elect\n        - --no-remote-bases\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Pin(root, Controller("tiny"), ref, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			s := string(out)
			if !strings.Contains(s, "image: "+ref.String()+"\n") {
				t.Errorf("rendered base does not name %s:\n%s", ref, s)
			}
			if strings.Contains(s, "ghcr.io") || strings.Contains(s, ":latest") {
				t.Errorf("rendered base still names the checked-in image:\n%s", s)
			}
			if !strings.Contains(s, "namespace: plumb-system") {
				t.Errorf("rendered base lost the base's namespace:\n%s", s)
			}
			if !strings.Contains(s, tc.wantArgs) {
				t.Errorf("rendered args, want %q:\n%s", tc.wantArgs, s)
			}
		})
	}
	after, err := os.ReadFile(deployment)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("Pin changed the checked-in Deployment")
	}

	other, _ := name.NewDigest("127.0.0.1:5000/plumb/other@sha256:" + strings.Repeat("ab", 32))
	// A base whose Deployment runs another component's image: nothing to pin.
	otherRoot := t.TempDir()
	if err := os.CopyFS(filepath.Join(otherRoot, "other", "config"), os.DirFS(filepath.Join(root, "tiny", "config"))); err != nil {
		t.Fatal(err)
	}
	if _, err := Pin(otherRoot, Controller("other"), other); err == nil || !strings.Contains(err.Error(), "no Deployment runs image ghcr.io/plumb-dev/other in a container named manager") {
		t.Errorf("a base without the component's image: error %v", err)
	}
}

func imageFor(t *testing.T, idx v1.ImageIndex, p v1.Platform) v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Equals(p) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no image for %s", p)
	return nil
}

type entry struct {
	*tar.Header
	data string
}

func entries(t *testing.T, l v1.Layer) []entry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []entry
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{h, string(b)})
	}
}

// The checked-in bases of the workspace pin too: each runs its image in the component's container
// (manager for the controllers, dashboard for the plumb command).
func TestPinEveryComponentBase(t *testing.T) {
	workspace, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range Components {
		t.Run(n, func(t *testing.T) {
			c := ComponentOf(n)
			if _, err := os.Stat(filepath.Join(workspace, c.Package, "main.go")); err != nil {
				t.Errorf("no main package where the image is built from: %v", err)
			}
			ref, err := name.NewDigest("127.0.0.1:5000/plumb/" + n + "@sha256:" + strings.Repeat("cd", 32))
			if err != nil {
				t.Fatal(err)
			}
			out, err := Pin(workspace, c, ref, "--extra-arg")
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"image: " + ref.String() + "\n", "- --extra-arg\n"}
			if c.Name != Plumb.Name {
				want = append(want, "kind: CustomResourceDefinition\n")
			}
			for _, w := range want {
				if !strings.Contains(string(out), w) {
					t.Errorf("rendered base lacks %q", w)
				}
			}
		})
	}
}

// A component outside the controllers' layout (the plumb command's) is built from its package,
// runs its own entrypoint, and is pinned in its own container.
func TestComponentOutsideTheControllersLayout(t *testing.T) {
	tool := Component{Name: "tool", Package: "cli/cmd/tool", Entrypoint: "/tool", Config: "cli/config/tool", Container: "tool"}
	amd64 := DefaultPlatforms[:1]
	idx, err := testBuilder(t).Build(context.Background(), tool, amd64)
	if err != nil {
		t.Fatal(err)
	}
	img := imageFor(t, idx, amd64[0])
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/tool"}) || cf.Config.Labels["org.opencontainers.image.title"] != "tool" {
		t.Errorf("entrypoint %q, title %q; want /tool and tool", cf.Config.Entrypoint, cf.Config.Labels["org.opencontainers.image.title"])
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if bin := entries(t, layers[len(layers)-1]); len(bin) != 1 || bin[0].Name != "tool" {
		t.Errorf("binary layer %v, want the one entry tool", bin)
	}

	ref, err := name.NewDigest("127.0.0.1:5000/plumb/tool@sha256:" + strings.Repeat("ef", 32))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Pin(root, tool, ref, "--extra")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"image: " + ref.String() + "\n", "args:\n        - serve\n        - --extra\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered base lacks %q:\n%s", want, out)
		}
	}
	if _, err := Pin(root, Controller("tool"), ref); err == nil || !strings.Contains(err.Error(), "tool/config") {
		t.Errorf("the controllers' layout for tool: error %v, want one naming tool/config", err)
	}

	if ComponentOf("plumb") != Plumb || ComponentOf("apply-controller") != Controller("apply-controller") {
		t.Errorf("ComponentOf: plumb %+v, apply-controller %+v", ComponentOf("plumb"), ComponentOf("apply-controller"))
	}
}
