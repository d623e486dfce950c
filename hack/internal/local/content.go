package local

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
)

// RequestReconcile annotates an object so that its controller reconciles it now, as a webhook
// Receiver or `plumb reconcile` would.
func RequestReconcile(ctx context.Context, c client.Client, obj client.Object) error {
	return c.Patch(ctx, obj, reconcile.RequestPatch(time.Now().Format(time.RFC3339Nano)))
}

// PushManifests pushes files as an OCI artifact (a gzipped tarball layer, as `flux push
// artifact` makes it) to host/repo:tag on a plain-HTTP registry and returns the manifest digest.
func PushManifests(host, repository, tag string, files map[string]string) (string, error) {
	return ocitest.Push(host, repository, tag, []ocitest.Layer{{MediaType: ocitest.ContentType, Data: ocitest.Tarball(files)}})
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
