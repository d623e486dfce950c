package helm

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/source-controller/internal/oci"
)

// Repository is a chart repository a dependency names, with what it takes to read it.
type Repository struct {
	URL             string
	Credentials     Credentials
	PassCredentials bool
	Insecure        bool // plain HTTP to an OCI registry
}

// RepositoryLookup finds a repository by the URL or the @name/alias:name a Chart.yaml gives; it
// returns the URL itself with no credentials when no HelmRepository has it.
type RepositoryLookup func(ctx context.Context, ref string) (Repository, error)

// Dependencies vendors the dependencies of a chart loaded from root/<dir> that its charts/
// folder does not hold yet: file:// (or empty) repositories from the source, http(s)
// repositories by their index, oci:// registries by their tags. Vendored charts bring their own
// dependencies along.
type Dependencies struct {
	Root   string // the unpacked source: file:// dependencies must stay inside it
	Lookup RepositoryLookup
	Limit  int64 // size bound of a downloaded chart
	// loading holds the folders of the charts being resolved, to refuse a chart that depends
	// on itself (directly or through others).
	loading []string
}

// maxDepth bounds a chain of file:// dependencies.
const maxDepth = 32

// Resolve adds the missing dependencies to ch, which was loaded from the folder dir.
func (d *Dependencies) Resolve(ctx context.Context, ch *chart.Chart, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	abs := filepath.Clean(dir)
	for _, l := range d.loading {
		if l == abs {
			return fmt.Errorf("%w: %s: a file:// dependency leads back to %s", ErrPackage, ch.Name(), d.rel(abs))
		}
	}
	if len(d.loading) >= maxDepth {
		return fmt.Errorf("%w: %s: file:// dependencies nest deeper than %d", ErrPackage, ch.Name(), maxDepth)
	}
	d.loading = append(d.loading, abs)
	defer func() { d.loading = d.loading[:len(d.loading)-1] }()
	have := map[string]bool{}
	for _, dep := range ch.Dependencies() {
		have[dep.Name()] = true
	}
	for _, dep := range ch.Metadata.Dependencies {
		if have[dep.Name] {
			continue
		}
		sub, err := d.fetch(ctx, ch, dir, dep)
		if err != nil {
			return fmt.Errorf("%w: %s: dependency %s: %v", ErrPackage, ch.Name(), dep.Name, err)
		}
		ch.AddDependency(sub)
		have[dep.Name] = true
	}
	return nil
}

func (d *Dependencies) rel(p string) string {
	if r, err := filepath.Rel(d.Root, p); err == nil {
		return filepath.ToSlash(r)
	}
	return p
}

func (d *Dependencies) fetch(ctx context.Context, parent *chart.Chart, dir string, dep *chart.Dependency) (*chart.Chart, error) {
	repoRef := dep.Repository
	switch {
	case repoRef == "" || strings.HasPrefix(repoRef, "file://"):
		rel := strings.TrimPrefix(repoRef, "file://")
		if rel == "" {
			rel = filepath.Join("charts", dep.Name)
		}
		if filepath.IsAbs(rel) {
			return nil, fmt.Errorf("repository %q: an absolute path", repoRef)
		}
		p := filepath.Join(dir, rel)
		if r, err := filepath.Rel(d.Root, p); err != nil || r == ".." || strings.HasPrefix(r, "../") {
			return nil, fmt.Errorf("repository %q leaves the source", repoRef)
		}
		sub, err := LoadDir(p)
		if err != nil {
			return nil, err
		}
		if err := d.Resolve(ctx, sub, p); err != nil {
			return nil, err
		}
		return sub, nil
	}
	repo, err := d.Lookup(ctx, repoRef)
	if err != nil {
		return nil, err
	}
	rng := dep.Version
	if rng == "" {
		rng = "*"
	}
	if strings.HasPrefix(repo.URL, "oci://") {
		return d.fromRegistry(ctx, repo, dep.Name, rng)
	}
	client, err := Client(repo.Credentials)
	if err != nil {
		return nil, err
	}
	raw, err := FetchIndex(ctx, client, repo.URL, repo.Credentials, MaxIndexSize)
	if err != nil {
		return nil, err
	}
	idx, err := LoadIndex(raw)
	if err != nil {
		return nil, err
	}
	cv, err := SelectVersion(idx, dep.Name, rng)
	if err != nil {
		return nil, err
	}
	data, err := Download(ctx, client, repo.URL, cv, repo.Credentials, repo.PassCredentials, d.Limit)
	if err != nil {
		return nil, err
	}
	return Load(data)
}

// ChartLayerMediaType is the media type of a chart's layer in an OCI registry.
const ChartLayerMediaType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

// fromRegistry pulls the highest version in rng of the chart <repo>/<name> from a registry.
func (d *Dependencies) fromRegistry(ctx context.Context, repo Repository, name, rng string) (*chart.Chart, error) {
	c := repo.Credentials
	oc := oci.Credentials{Username: c.Username, Password: c.Password, CA: c.CA, Cert: c.Cert, Key: c.Key, Insecure: repo.Insecure}
	if len(c.DockerConfig) > 0 {
		oc.DockerConfigs = [][]byte{c.DockerConfig}
	}
	remote, err := oci.NewRemote(strings.TrimSuffix(repo.URL, "/")+"/"+name, oc)
	if err != nil {
		return nil, err
	}
	res, err := remote.Resolve(ctx, oci.Ref{SemVer: rng})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := remote.Write(ctx, res, oci.Layer{MediaType: ChartLayerMediaType, Copy: true}, artifact.Limits{MaxFiles: 1, MaxBytes: d.Limit}, &buf); err != nil {
		return nil, err
	}
	return Load(buf.Bytes())
}
