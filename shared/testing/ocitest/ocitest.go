// Package ocitest serves an OCI registry on loopback and pushes artifacts to it, for the tests and
// benchmarks of OCI sources and image scans.
package ocitest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ContentType is the media type of a layer of manifests, as `flux push artifact` writes it.
const ContentType = "application/vnd.cncf.flux.content.v1.tar+gzip"

// Registry is go-containerregistry's in-process registry on a loopback port.
type Registry struct {
	// Host is host:port, for URLs oci://<Host>/<repo>.
	Host string
	srv  *httptest.Server
}

// NewRegistry starts a registry; wrap, if not nil, puts a handler in front of it (to require
// credentials or count requests).
func NewRegistry(wrap func(http.Handler) http.Handler) *Registry {
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), srv: srv}
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Tarball returns a gzipped tarball of files (name → content), written as given: names are not
// checked, so that tests can build unsafe archives.
func Tarball(files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(files[n]))
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// Layer is a blob with its media type.
type Layer struct {
	MediaType string
	Data      []byte
}

// Push writes an OCI artifact with the layers to host/repo:tag over plain HTTP and returns its
// manifest digest. opts add credentials or a transport.
func Push(host, repo, tag string, layers []Layer, opts ...remote.Option) (string, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, "application/vnd.cncf.flux.config.v1+json")
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(l.Data, types.MediaType(l.MediaType))); err != nil {
			return "", err
		}
	}
	ref, err := name.ParseReference(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
