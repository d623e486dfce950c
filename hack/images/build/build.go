// Package build makes the container images of Plumb without a Docker daemon: it cross-compiles
// each component's static binary (a controller, or the plumb command) with the go command, wraps
// it in a multi-arch OCI image index with go-containerregistry, pushes the index to a registry,
// and renders the component's Kustomize base with its image pinned to the pushed digest.
//
// The images start from scratch: a small base layer (/etc/passwd and /etc/group naming the
// non-root user, an optional CA bundle, /tmp) and a layer holding the binary (/manager for a
// controller, /plumb for the plumb command). There is no shell and no git program.
// apply-controller runs Kustomize remote bases through the git program, so in these images it must
// run with --no-remote-bases (Pin adds it on request).
package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Components are the images of the workspace, by name: the five controllers (see Controller),
// and the plumb command (Plumb), whose image runs the dashboard in a cluster.
var Components = []string{
	"source-controller",
	"apply-controller",
	"helm-controller",
	"notification-controller",
	"image-automation",
	Plumb.Name,
}

// Component is what one image holds and what runs it: a main package of the workspace, where its
// binary sits in the image, and the Kustomize base whose Deployment runs the image.
type Component struct {
	// Name names the image (<prefix>/<Name>) and the component (-components).
	Name string
	// Package is the folder of the main package, relative to the workspace root.
	Package string
	// Entrypoint is where the binary sits in the image, and what the image runs.
	Entrypoint string
	// Config is the folder of the Kustomize base, relative to the workspace root.
	Config string
	// Container is the container of the base's Deployment that runs the image.
	Container string
}

// Controller is the layout every controller has: its main package in <name>/cmd, the binary at
// /manager, its Kustomize base in <name>/config, run by a container named manager.
func Controller(name string) Component {
	return Component{Name: name, Package: name + "/cmd", Entrypoint: Entrypoint, Config: name + "/config", Container: "manager"}
}

// Plumb is the plumb command. Its image runs `plumb dashboard --in-cluster` in the Deployment of
// cli/config/dashboard; any other plumb command runs from it as well.
var Plumb = Component{Name: "plumb", Package: "cli/cmd/plumb", Entrypoint: "/plumb", Config: "cli/config/dashboard", Container: "dashboard"}

// ComponentOf returns the component named name: Plumb, or else a controller's layout.
func ComponentOf(name string) Component {
	if name == Plumb.Name {
		return Plumb
	}
	return Controller(name)
}

// DefaultPlatforms are the platforms an image is built for unless told otherwise.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

const (
	// Entrypoint is where a controller's binary sits in the image.
	Entrypoint = "/manager"
	// UID and GID of the user the controller runs as: distroless's "nonroot", which the
	// Deployments' runAsNonRoot accepts because it is numeric.
	UID = 65532
	GID = 65532
	// DefaultSource is the org.opencontainers.image.source label unless told otherwise.
	DefaultSource = "https://github.com/plumb-dev/plumb"
	// CABundlePath is where the CA bundle goes: the first path Go's crypto/x509 reads on Linux.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

// epoch is the time written everywhere a time is due (tar headers, config, history), so that the
// same binary always gives the same digests.
var epoch = time.Unix(0, 0).UTC()

// Builder builds images of the components of one workspace.
type Builder struct {
	// Root is the workspace root: the folder holding go.work and one folder per component.
	Root string
	// Version is the org.opencontainers.image.version label; "dev" when empty.
	Version string
	// Source is the org.opencontainers.image.source label; DefaultSource when empty.
	Source string
	// CACerts is a PEM bundle put at CABundlePath, so that the controllers can verify TLS
	// servers (Git, Helm and OCI registries, Slack). Empty: none, and TLS to public servers
	// fails. The bundle is copied as is: the digest then also depends on the build machine's bundle.
	CACerts string
	// Log, when not nil, receives a line per binary built.
	Log io.Writer
}

// Build builds component for every platform with Builder{Root: root}: see Builder.Build.
func Build(ctx context.Context, root string, component Component, platforms []v1.Platform) (v1.ImageIndex, error) {
	return Builder{Root: root}.Build(ctx, component, platforms)
}

// Build compiles the component's package for every platform and returns an OCI image index with
// one image per platform, in the order given.
func (b Builder) Build(ctx context.Context, component Component, platforms []v1.Platform) (v1.ImageIndex, error) {
	if len(platforms) == 0 {
		return nil, fmt.Errorf("build %s: no platforms", component.Name)
	}
	base, err := b.baseLayer()
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.IndexAddendum, 0, len(platforms))
	for _, p := range platforms {
		bin, err := b.compile(ctx, component, p)
		if err != nil {
			return nil, err
		}
		img, err := b.image(component, bin, p, base)
		if err != nil {
			return nil, fmt.Errorf("image of %s for %s: %w", component.Name, p, err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx, adds...), nil
}

// compile runs go build for one platform and returns the binary.
func (b Builder) compile(ctx context.Context, component Component, p v1.Platform) ([]byte, error) {
	env, err := goEnv(p)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", component.Name, err)
	}
	dir, err := os.MkdirTemp("", "plumb-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, path.Base(component.Entrypoint))
	start := time.Now()
	// -buildvcs=false: VCS stamping needs the git program and a clean checkout, and would
	// change the digest on every commit even when the component did not change.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w",
		"-o", out, "./"+component.Package)
	cmd.Dir = b.Root
	cmd.Env = append(os.Environ(), env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./%s for %s: %w: %s", component.Package, p, err, strings.TrimSpace(string(msg)))
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	if b.Log != nil {
		fmt.Fprintf(b.Log, "built %s for %s: %d MiB in %s\n", component.Name, p, len(bin)>>20, time.Since(start).Round(100*time.Millisecond))
	}
	return bin, nil
}

// goEnv is the environment that makes go build produce a static binary for p.
func goEnv(p v1.Platform) ([]string, error) {
	if p.OS != "linux" {
		return nil, fmt.Errorf("platform %s: only linux images are built", p)
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + p.Architecture}
	switch {
	case p.Variant == "":
	case p.Architecture == "arm" && (p.Variant == "v6" || p.Variant == "v7"):
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	case p.Architecture == "arm64" && p.Variant == "v8":
	case p.Architecture == "amd64" && (p.Variant == "v2" || p.Variant == "v3" || p.Variant == "v4"):
		env = append(env, "GOAMD64="+p.Variant)
	default:
		return nil, fmt.Errorf("platform %s: variant %q is not supported", p, p.Variant)
	}
	return env, nil
}

// image wraps one binary: the base layer, then the binary at the component's entrypoint.
func (b Builder) image(component Component, bin []byte, p v1.Platform, base v1.Layer) (v1.Image, error) {
	layer, err := layerOf([]file{{name: strings.TrimPrefix(component.Entrypoint, "/"), mode: 0o755, uid: UID, gid: GID, data: bin}})
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "plumb hack/images: base files", Comment: "passwd, group, CA bundle, /tmp"}},
		mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "plumb hack/images: go build ./" + component.Package}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: epoch}
	cf.Author = "plumb hack/images"
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	cf.Config = v1.Config{
		Entrypoint: []string{component.Entrypoint},
		User:       fmt.Sprintf("%d:%d", UID, GID),
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.source":  orDefault(b.Source, DefaultSource),
			"org.opencontainers.image.title":   component.Name,
			"org.opencontainers.image.version": orDefault(b.Version, "dev"),
		},
	}
	return mutate.ConfigFile(img, cf)
}

// baseLayer holds what a scratch image lacks and the controllers need: a name for the non-root
// user (os/user and ssh known_hosts lookups), the CA bundle and a world-writable /tmp for runs
// outside Kubernetes (the Deployments mount an emptyDir there). Every component and platform
// shares it, so a registry stores it once.
func (b Builder) baseLayer() (v1.Layer, error) {
	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
	}
	if b.CACerts != "" {
		pem, err := os.ReadFile(b.CACerts)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		files = append(files,
			file{name: "etc/ssl/", mode: 0o755, dir: true},
			file{name: "etc/ssl/certs/", mode: 0o755, dir: true},
			file{name: strings.TrimPrefix(CABundlePath, "/"), mode: 0o644, data: pem},
		)
	}
	files = append(files,
		file{name: "home/", mode: 0o755, dir: true},
		file{name: "home/nonroot/", mode: 0o700, uid: UID, gid: GID, dir: true},
		file{name: "tmp/", mode: 0o1777, dir: true},
	)
	return layerOf(files)
}

// file is one entry of a layer.
type file struct {
	name     string
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// layerOf writes files, in the order given, as a gzipped tar with fixed times and no user or group
// names, so equal inputs give equal bytes and equal digests.
func layerOf(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf) // no name and a zero time in the gzip header
	tw := tar.NewWriter(zw)
	for _, f := range files {
		h := &tar.Header{
			Name:     f.name,
			Mode:     f.mode,
			Uid:      f.uid,
			Gid:      f.gid,
			ModTime:  epoch,
			Typeflag: tar.TypeReg,
			Size:     int64(len(f.data)),
			Format:   tar.FormatPAX,
		}
		if f.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	gz := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
