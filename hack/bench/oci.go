package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/cosign"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// benchOCI: n OCIRepositories, each following a semver range on its own repository of one
// in-process registry on loopback; cold start to all Ready, then one no-op reconcile each. With
// verify, every artifact is signed with one cosign key and every OCIRepository verifies it.
func benchOCI(ctx context.Context, n int, verify bool, profile string) ([]Metric, error) {
	var blobGets atomic.Int64
	reg := httptest.NewServer(countBlobs(&blobGets, registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	var key *cosign.Key
	if verify {
		var err error
		if key, err = cosign.NewKey(); err != nil {
			return nil, err
		}
	}
	for i := range n {
		if err := pushApp(host, i, key); err != nil {
			return nil, err
		}
	}

	bed, err := local.StartBed("plumb-bench-oci-", false)
	if err != nil {
		return nil, err
	}
	defer bed.Stop()
	c := bed.Env.Client
	pprofAddr, err := local.FreeAddr()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := local.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := bed.StartSourceController("--pprof-addr", pprofAddr, "--metrics-addr", metricsAddr)
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}
	if err := c.Create(ctx, ns); err != nil {
		return nil, err
	}
	var verification *sourcev1.OCIArtifactVerification
	if key != nil {
		keys := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cosign-keys", Namespace: ns.Name},
			Data: map[string][]byte{"cosign.pub": key.PublicPEM()}}
		if err := c.Create(ctx, keys); err != nil {
			return nil, err
		}
		verification = &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: keys.Name}}
	}
	reqStart, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	for i := range n {
		obj := &sourcev1.OCIRepository{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i), Namespace: ns.Name},
			Spec: sourcev1.OCIRepositorySpec{
				URL:      fmt.Sprintf("oci://%s/apps/app-%04d", host, i),
				Ref:      &sourcev1.OCIRepositoryRef{SemVer: "1.x"},
				Insecure: true,
				Interval: metav1.Duration{Duration: time.Hour},
				Verify:   verification,
			},
		}
		if err := c.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	items := func(l *sourcev1.OCIRepositoryList) []sourcev1.OCIRepository { return l.Items }
	if err := waitAll(ctx, c, ns.Name, n, 5*time.Minute, items, func(o *sourcev1.OCIRepository) bool {
		return ready(o.Status.Conditions) && o.Status.Artifact != nil
	}); err != nil {
		return nil, err
	}
	coldReady := time.Since(begin)
	coldPulls := blobGets.Load()
	cpuCold, _ := p.CPU()
	reqCold, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}

	round, err := noopRound(ctx, c, p, pprofAddr, profile, 2*time.Second, ns.Name, n, 5*time.Minute, func(i int) client.Object {
		return &sourcev1.OCIRepository{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i), Namespace: ns.Name}}
	}, items, func(o *sourcev1.OCIRepository) string { return o.Status.LastHandledReconcileAt })
	if err != nil {
		return nil, err
	}
	reqNoop, err := scrapeRequests(metricsAddr)
	if err != nil {
		return nil, err
	}
	rss, _ := p.PeakRSS()

	var f figures
	f.add("cold_ready", "cold start to all Ready", coldReady.Seconds(), 3, "s", Lower)
	f.add("cold_blob_downloads", "blob downloads during cold start", float64(coldPulls), 0, "count", Lower)
	f.add("cold_cpu", "controller CPU, cold start", cpuCold.Seconds(), 2, "CPU s", Lower)
	f.coldRequests(reqCold.minus(reqStart), n)
	f.add("noop_round", "no-op round, request to all handled", round.wall.Seconds(), 3, "s", Lower)
	f.add("noop_cpu_per_reconcile", "controller CPU per no-op reconcile", round.perReconcile(), 3, "CPU ms/reconcile", Lower)
	f.noopRequests(reqNoop.minus(reqCold), n)
	f.add("noop_blob_downloads", "blob downloads during the no-op round", float64(blobGets.Load()-coldPulls), 0, "count", Lower)
	f.add("peak_rss", "controller peak RSS", rss, 1, "MiB", Lower)
	title := fmt.Sprintf("oci: %d OCIRepositories, semver ranges, one registry (%d CPUs, %s)", n, runtime.NumCPU(), runtime.GOARCH)
	if verify {
		title += ", cosign keyed verification"
	}
	writeTable(os.Stdout, title, f)
	return f, nil
}

func countBlobs(n *atomic.Int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			n.Add(1)
		}
		next.ServeHTTP(w, r)
	})
}

// pushApp pushes apps/app-<i>:v1.0.0, a layer of manifests as `flux push artifact` makes it,
// and a v2.0.0 that the range leaves out; with a key, it signs each as cosign sign --key does.
func pushApp(host string, i int, key *cosign.Key) error {
	for _, tag := range []string{"v1.0.0", "v2.0.0"} {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		body := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%04d\ndata:\n  version: %s\n", i, tag)
		if err := tw.WriteHeader(&tar.Header{Name: "deploy/configmap.yaml", Mode: 0o644, Size: int64(len(body))}); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		if err := gz.Close(); err != nil {
			return err
		}
		img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
			static.NewLayer(buf.Bytes(), "application/vnd.cncf.flux.content.v1.tar+gzip"))
		if err != nil {
			return err
		}
		ref, err := name.ParseReference(fmt.Sprintf("%s/apps/app-%04d:%s", host, i, tag), name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img); err != nil {
			return err
		}
		if key == nil {
			continue
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		if err := cosign.Sign(ref.Context().Name(), d.String(), []cosign.Signature{{Key: key.Private}}); err != nil {
			return err
		}
	}
	return nil
}

// ready reports whether the Ready condition is True.
func ready(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == "Ready" {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}
