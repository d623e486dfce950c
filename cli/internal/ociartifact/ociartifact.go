// Package ociartifact packs a folder into an OCI artifact in the format an OCIRepository reads
// (Flux's `flux push artifact` format: one gzipped tarball layer of media type
// application/vnd.cncf.flux.content.v1.tar+gzip, written as the artifact contract's producers
// write theirs) and pushes it to a registry.
package ociartifact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/plumb-dev/plumb/shared/artifact"
)

// Media types of Flux's OCI artifacts, which Plumb's OCIRepository reads.
const (
	ConfigMediaType  = "application/vnd.cncf.flux.config.v1+json"
	ContentMediaType = "application/vnd.cncf.flux.content.v1.tar+gzip"
)

// Annotations of the manifest, as `flux push artifact` writes them.
const (
	SourceAnnotation   = "org.opencontainers.image.source"
	RevisionAnnotation = "org.opencontainers.image.revision"
	CreatedAnnotation  = "org.opencontainers.image.created"
)

// Pack writes the files and symbolic links under dir into a deterministic gzipped tarball
// (sorted, fixed times and modes), leaving out .git folders. It refuses what an OCIRepository's
// consumers would refuse: links out of the folder, devices, sockets.
func Pack(dir string) ([]byte, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	files := 0
	// WalkDir visits in lexical order, so equal folders give equal bytes.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			return nil
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			files++
			return w.Symlink(rel, filepath.ToSlash(target))
		case d.Type().IsRegular():
			files++
			return addFile(w, path, rel)
		default:
			return fmt.Errorf("%s: a %s, not a file or a link", rel, d.Type())
		}
	})
	if err == nil && files == 0 {
		// An empty artifact is almost certainly the wrong folder.
		err = errors.New("the folder has no files")
	}
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	return buf.Bytes(), nil
}

func addFile(w *artifact.Writer, path, rel string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	return w.File(rel, info.Mode()&0o111 != 0, info.Size(), f)
}

// Meta is where the content came from, recorded in the manifest's annotations.
type Meta struct {
	// Source is the URL of the origin (a Git repository).
	Source string
	// Revision is the origin's revision (<branch>@sha1:<commit>).
	Revision string
	// Created is the time of the push; zero: none recorded, so that equal content and meta
	// give an equal digest.
	Created time.Time
}

// Push pushes the tarball as an artifact to ref (host/repo:tag) and returns the repository
// (host/repo) and the manifest digest.
func Push(ctx context.Context, ref string, tarball []byte, meta Meta, opts ...remote.Option) (repo, digest string, err error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", ref, err)
	}
	if _, ok := r.(name.Tag); !ok {
		return "", "", fmt.Errorf("%s: push to a tag (oci://host/repo:tag), not a digest", ref)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, ConfigMediaType)
	img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(tarball, ContentMediaType)})
	if err != nil {
		return "", "", err
	}
	if ann := meta.annotations(); len(ann) > 0 {
		img = mutate.Annotations(img, ann).(v1.Image)
	}
	if err := remote.Write(r, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return "", "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	return r.Context().Name(), d.String(), nil
}

func (m Meta) annotations() map[string]string {
	ann := map[string]string{}
	if m.Source != "" {
		ann[SourceAnnotation] = m.Source
	}
	if m.Revision != "" {
		ann[RevisionAnnotation] = m.Revision
	}
	if !m.Created.IsZero() {
		ann[CreatedAnnotation] = m.Created.UTC().Format(time.RFC3339)
	}
	return ann
}

// TrimScheme turns oci://host/repo:tag into host/repo:tag, refusing other schemes.
func TrimScheme(url string) (string, error) {
	ref, ok := strings.CutPrefix(url, "oci://")
	if !ok || ref == "" {
		return "", fmt.Errorf("%q: want oci://host/repository:tag", url)
	}
	return ref, nil
}
