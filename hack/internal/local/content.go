package local

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/reconcile"
)

// RequestReconcile annotates an object so that its controller reconciles it now, as a webhook
// Receiver or `plumb reconcile` would.
func RequestReconcile(ctx context.Context, c client.Client, obj client.Object) error {
	return c.Patch(ctx, obj, reconcile.RequestPatch(time.Now().Format(time.RFC3339Nano)))
}

// PushManifests pushes files as an OCI artifact (a gzipped tarball layer, as `flux push
// artifact` makes it) to host/repo:tag on a plain-HTTP registry and returns the manifest digest.
func PushManifests(host, repository, tag string, files map[string]string) (string, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			return "", err
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		static.NewLayer(buf.Bytes(), "application/vnd.cncf.flux.content.v1.tar+gzip"))
	if err != nil {
		return "", err
	}
	ref, err := name.ParseReference(host+"/"+repository+":"+tag, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img); err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// PublishChart packages ch into dir and indexes dir with the Helm SDK, as a chart repository
// served from url.
func PublishChart(dir, url string, ch *chart.Chart) error {
	if _, err := chartutil.Save(ch, dir); err != nil {
		return err
	}
	idx, err := repo.IndexDirectory(dir, url)
	if err != nil {
		return err
	}
	return idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644)
}

// ChartPackage is the file PublishChart wrote for ch.
func ChartPackage(dir string, ch *chart.Chart) ([]byte, error) {
	return os.ReadFile(filepath.Join(dir, ch.Name()+"-"+ch.Metadata.Version+".tgz"))
}
