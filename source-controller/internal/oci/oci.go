// Package oci resolves a tag, a semver range or a digest of an OCI repository to a manifest, and
// writes one of its layers as an artifact: extracted from a gzipped tarball (safely, through
// shared/artifact) or copied as it is. It is free of controller-runtime.
package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/redact"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/source-controller/internal/ignore"
)

// Errors, to be told apart with errors.Is.
var (
	// ErrAuth: the registry refused the credentials, or they are missing or unreadable. It is
	// shared/registry's, so that its errors about unreadable credentials are of this kind too.
	ErrAuth = registry.ErrAuth
	// ErrNotFound: no tag matches, or the tag, digest or repository does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a setting that cannot work (bad URL, semver range or filter).
	ErrInvalid = errors.New("invalid")
	// ErrContent: the manifest or layer cannot be published (no such layer, not a tarball,
	// unsafe paths, over the size limit).
	ErrContent = errors.New("content")
)

// Ref selects a manifest: Digest, else SemVer (with Filter), else Tag.
type Ref struct {
	Tag, SemVer, Filter, Digest string
}

// Remote is a repository with the options to reach it.
type Remote struct {
	Repo name.Repository
	// puller keeps the registry's ping and token between the requests of one reconcile.
	puller *remote.Puller
}

// Credentials for a registry: shared/registry's, which turns them into a transport and an
// authenticator.
type Credentials = registry.Credentials

// NewRemote parses an oci:// URL and prepares the transport and credentials.
func NewRemote(url string, c Credentials) (*Remote, error) {
	repo, err := ParseURL(url, c)
	if err != nil {
		return nil, err
	}
	opts, err := registry.Options(repo, c)
	if err != nil {
		return nil, err
	}
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	return &Remote{Repo: repo, puller: p}, nil
}

// ParseURL parses an oci:// URL into a repository; a bad URL is ErrInvalid.
func ParseURL(url string, c Credentials) (name.Repository, error) {
	s, ok := strings.CutPrefix(url, "oci://")
	if !ok {
		return name.Repository{}, fmt.Errorf("%w: url %q must start with oci://", ErrInvalid, redact.URL(url))
	}
	repo, err := name.NewRepository(strings.TrimSuffix(s, "/"), c.NameOptions()...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%w: url %q is not a repository name (host[:port]/path, no credentials)", ErrInvalid, redact.URL(url))
	}
	return repo, nil
}

// Resolved is the manifest a Ref selected.
type Resolved struct {
	Tag    string // empty for a digest ref
	Digest string // sha256:...
	// Revision is <tag>@<digest>, or the digest alone.
	Revision string
}

// Resolve finds the manifest digest: a digest or a tag with a HEAD request (so that access is
// checked with these credentials even for content already pulled), a semver range by listing
// tags then a HEAD of the highest match.
func (r *Remote) Resolve(ctx context.Context, ref Ref) (Resolved, error) {
	if ref.Digest != "" {
		if _, err := v1.NewHash(ref.Digest); err != nil {
			return Resolved{}, fmt.Errorf("%w: digest %q: %v", ErrInvalid, ref.Digest, err)
		}
		if _, err := r.puller.Head(ctx, r.Repo.Digest(ref.Digest)); err != nil {
			return Resolved{}, r.classify(err, "digest "+ref.Digest)
		}
		return Resolved{Digest: ref.Digest, Revision: ref.Digest}, nil
	}
	tag := ref.Tag
	if ref.SemVer != "" {
		var err error
		if tag, err = r.highest(ctx, ref.SemVer, ref.Filter); err != nil {
			return Resolved{}, err
		}
	}
	if tag == "" {
		tag = "latest"
	}
	desc, err := r.puller.Head(ctx, r.Repo.Tag(tag))
	if err != nil {
		return Resolved{}, r.classify(err, "tag "+tag)
	}
	d := desc.Digest.String()
	return Resolved{Tag: tag, Digest: d, Revision: tag + "@" + d}, nil
}

// highest lists the tags and returns the highest that is a version in the range.
func (r *Remote) highest(ctx context.Context, rng, filter string) (string, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return "", fmt.Errorf("%w: semver range %q: %v", ErrInvalid, rng, err)
	}
	var re *regexp.Regexp
	if filter != "" {
		if re, err = regexp.Compile(filter); err != nil {
			return "", fmt.Errorf("%w: semverFilter %q: %v", ErrInvalid, filter, err)
		}
	}
	tags, err := r.puller.List(ctx, r.Repo)
	if err != nil {
		return "", r.classify(err, "tags")
	}
	tag, nearest := Highest(tags, c, re)
	if tag == "" {
		msg := fmt.Sprintf("no tag of %s matches semver %q", r.Repo, rng)
		if filter != "" {
			msg += fmt.Sprintf(" and filter %q", filter)
		}
		if len(nearest) > 0 {
			msg += "; highest versions found: " + strings.Join(nearest, ", ")
		} else {
			msg += "; no tag is a version"
		}
		return "", fmt.Errorf("%w: %s", ErrNotFound, msg)
	}
	return tag, nil
}

// Highest returns the tag with the highest version in c among those matching re (nil matches
// all), and, when none is in range, the five highest versions for the message.
func Highest(tags []string, c *semver.Constraints, re *regexp.Regexp) (string, []string) {
	type tv struct {
		tag string
		v   *semver.Version
	}
	var all []tv
	for _, t := range tags {
		if re != nil && !re.MatchString(t) {
			continue
		}
		// `helm push` writes the + of build metadata as _, which tags cannot hold.
		v, err := semver.NewVersion(strings.ReplaceAll(t, "_", "+"))
		if err != nil {
			continue
		}
		all = append(all, tv{t, v})
	}
	// Highest first; equal versions (v1.0.0 and 1.0.0) ordered by tag for a stable choice.
	sort.Slice(all, func(i, j int) bool {
		if c := all[i].v.Compare(all[j].v); c != 0 {
			return c > 0
		}
		return all[i].tag < all[j].tag
	})
	for _, x := range all {
		if c.Check(x.v) {
			return x.tag, nil
		}
	}
	var nearest []string
	for i := 0; i < len(all) && i < 5; i++ {
		nearest = append(nearest, all[i].tag)
	}
	return "", nearest
}

// classify wraps a registry error with the package's errors; what names the thing asked for.
func (r *Remote) classify(err error, what string) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w: %s refused the credentials (HTTP %d)", ErrAuth, r.Repo.RegistryStr(), te.StatusCode)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s of %s", ErrNotFound, what, r.Repo)
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
				return fmt.Errorf("%w: %s of %s", ErrNotFound, what, r.Repo)
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("%w: %s refused the credentials", ErrAuth, r.Repo.RegistryStr())
			}
		}
	}
	return fmt.Errorf("%s of %s: %w", what, r.Repo, err)
}

// Layer says which layer to write and how.
type Layer struct {
	MediaType string // empty: the first layer
	Copy      bool   // the blob as it is, instead of extracting it
	Ignore    string // .gitignore patterns of files to leave out when extracting
}

// Write reads the manifest of res and writes the selected layer to out: its blob when copied,
// otherwise a deterministic tarball of its files. Blobs are checked against their digests.
func (r *Remote) Write(ctx context.Context, res Resolved, sel Layer, lim artifact.Limits, out io.Writer) error {
	desc, err := r.puller.Get(ctx, r.Repo.Digest(res.Digest))
	if err != nil {
		return r.classify(err, "manifest "+res.Digest)
	}
	if desc.MediaType.IsIndex() {
		return fmt.Errorf("%w: %s is an image index (%s), not the manifest of an artifact", ErrContent, res.Revision, desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return r.classify(err, "manifest "+res.Digest)
	}
	m, err := img.Manifest()
	if err != nil {
		return r.classify(err, "manifest "+res.Digest)
	}
	var pick *v1.Descriptor
	var types []string
	for i := range m.Layers {
		types = append(types, string(m.Layers[i].MediaType))
		if pick == nil && (sel.MediaType == "" || string(m.Layers[i].MediaType) == sel.MediaType) {
			pick = &m.Layers[i]
		}
	}
	if pick == nil {
		if len(types) == 0 {
			return fmt.Errorf("%w: manifest %s has no layers", ErrContent, res.Digest)
		}
		return fmt.Errorf("%w: manifest %s has no layer of media type %s (it has %s)", ErrContent, res.Digest, sel.MediaType, strings.Join(types, ", "))
	}
	if pick.Size > lim.MaxBytes {
		return fmt.Errorf("%w: layer %s is %d bytes, over the limit of %d", ErrContent, pick.Digest, pick.Size, lim.MaxBytes)
	}
	layer, err := img.LayerByDigest(pick.Digest)
	if err != nil {
		return r.classify(err, "layer "+pick.Digest.String())
	}
	rc, err := layer.Compressed()
	if err != nil {
		return r.classify(err, "layer "+pick.Digest.String())
	}
	defer rc.Close()
	body := io.LimitReader(rc, pick.Size+1)
	if sel.Copy {
		n, err := io.Copy(out, body)
		if err != nil {
			return fmt.Errorf("layer %s: %w", pick.Digest, err)
		}
		if n != pick.Size {
			return fmt.Errorf("%w: layer %s is %d bytes, the manifest says %d", ErrContent, pick.Digest, n, pick.Size)
		}
		return nil
	}
	w := artifact.NewWriter(out)
	ig := ignore.New(sel.Ignore)
	err = artifact.Walk(body, lim, func(e artifact.Entry, rd io.Reader) error {
		if ig.Ignored(e.Name) {
			return nil
		}
		if e.Linkname != "" {
			return w.Symlink(e.Name, e.Linkname)
		}
		return w.File(e.Name, e.Executable, e.Size, rd)
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("layer %s: %w", pick.Digest, err)
		}
		// A broken or unsafe archive, a blob that does not match its digest, or a read cut
		// short: all shown with their cause, and all retried.
		return fmt.Errorf("%w: layer %s (%s): %v", ErrContent, pick.Digest, pick.MediaType, err)
	}
	return w.Close()
}

// Image returns the image that tag names in the repository (e.g. cosign's signature tag); a tag
// that does not exist is ErrNotFound.
func (r *Remote) Image(ctx context.Context, tag string) (v1.Image, error) {
	desc, err := r.puller.Get(ctx, r.Repo.Tag(tag))
	if err != nil {
		return nil, r.classify(err, "tag "+tag)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, r.classify(err, "tag "+tag)
	}
	return img, nil
}

// Referrers lists the manifests that refer to digest through the registry's referrers API (or
// the tag schema fallback), of artifactType when not empty.
func (r *Remote) Referrers(ctx context.Context, digest v1.Hash, artifactType string) ([]v1.Descriptor, error) {
	idx, err := remote.Referrers(r.Repo.Digest(digest.String()), remote.Reuse(r.puller), remote.WithContext(ctx))
	if err != nil {
		return nil, r.classify(err, "referrers of "+digest.String())
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, r.classify(err, "referrers of "+digest.String())
	}
	var out []v1.Descriptor
	for _, d := range m.Manifests {
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out, nil
}

// Fetch returns the manifest or blob of digest, checked against it, at most limit bytes.
func (r *Remote) Fetch(ctx context.Context, digest v1.Hash, limit int64) ([]byte, error) {
	desc, err := r.puller.Get(ctx, r.Repo.Digest(digest.String()))
	if err == nil {
		if int64(len(desc.Manifest)) > limit {
			return nil, fmt.Errorf("%w: manifest %s is over %d bytes", ErrContent, digest, limit)
		}
		return desc.Manifest, nil
	}
	layer, lerr := r.puller.Layer(ctx, r.Repo.Digest(digest.String()))
	if lerr != nil {
		return nil, r.classify(err, "manifest or blob "+digest.String())
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, r.classify(err, "blob "+digest.String())
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, r.classify(err, "blob "+digest.String())
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: blob %s is over %d bytes", ErrContent, digest, limit)
	}
	return b, nil
}

// RepositoryName is the repository's registry/path, e.g. ghcr.io/org/app.
func (r *Remote) RepositoryName() string { return r.Repo.Name() }
