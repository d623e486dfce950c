package buckettest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// GCSVersion is the fake-gcs-server release the tests run: github.com/fsouza/fake-gcs-server,
// an emulator of Google Cloud Storage's JSON and XML APIs, built once from the Go module proxy
// into $PLUMB_CACHE/bin/fake-gcs-server-<version>/.
const GCSVersion = "v1.56.1"

// GCSModule is the package built.
const GCSModule = "github.com/fsouza/fake-gcs-server"

// GCSPath returns the cached fake-gcs-server binary's path.
func GCSPath() string {
	return filepath.Join(cacheDir(), "bin", "fake-gcs-server-"+GCSVersion, "fake-gcs-server")
}

var (
	gcsOnce sync.Once
	gcsErr  error
)

// GCSBinary returns the fake-gcs-server binary, building it once when it is not cached.
func GCSBinary() (string, error) {
	gcsOnce.Do(func() { gcsErr = goInstall(GCSPath(), GCSModule, GCSVersion) })
	return GCSPath(), gcsErr
}

// GCS is a running fake-gcs-server, plain HTTP on loopback, its objects in memory. It checks
// no credentials: tests see what a client sends through a Downloads proxy.
type GCS struct {
	// Endpoint is 127.0.0.1:port.
	Endpoint string
	proc     *process
}

// StartGCS runs fake-gcs-server on a free loopback port, its log in dir.
func StartGCS(dir string) (*GCS, error) {
	bin, err := GCSBinary()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "-scheme", "http", "-host", host, "-port", port, "-backend", "memory",
		"-public-host", addr, "-external-url", "http://"+addr, "-log-level", "warn")
	cmd.Dir = dir
	p, err := startProcess("fake-gcs-server", dir, cmd, "http://"+addr+"/storage/v1/b")
	if err != nil {
		return nil, err
	}
	return &GCS{Endpoint: addr, proc: p}, nil
}

// Stop ends the server.
func (g *GCS) Stop() { g.proc.stop() }

// Client is an unauthenticated client of the emulator.
func (g *GCS) Client(ctx context.Context) (*storage.Client, error) {
	// An HTTP client of its own: the library's default transport would ask the metadata server
	// (169.254.169.254) for an mTLS configuration.
	return storage.NewClient(ctx, option.WithEndpoint("http://"+g.Endpoint+"/storage/v1/"), option.WithoutAuthentication(),
		option.WithHTTPClient(&http.Client{}), storage.WithDisabledClientMetrics())
}

// MakeBucket creates a bucket with the objects (key → content).
func (g *GCS) MakeBucket(ctx context.Context, name string, objects map[string]string) error {
	c, err := g.Client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bucket(name).Create(ctx, "plumb-test", nil); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return g.Put(ctx, name, objects)
}

// Put writes objects (key → content) into a bucket; an empty content deletes the key.
func (g *GCS) Put(ctx context.Context, bucket string, objects map[string]string) error {
	c, err := g.Client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for k, v := range objects {
		o := c.Bucket(bucket).Object(k)
		if v == "" {
			if err := o.Delete(ctx); err != nil {
				return err
			}
			continue
		}
		w := o.NewWriter(ctx)
		if _, err := w.Write([]byte(v)); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
	}
	return nil
}

// ETag returns the object's ETag as the emulator lists it.
func (g *GCS) ETag(ctx context.Context, bucket, key string) (string, error) {
	c, err := g.Client(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	attrs, err := c.Bucket(bucket).Object(key).Attrs(ctx)
	if err != nil {
		return "", err
	}
	return attrs.Etag, nil
}

// NewDownloads starts a proxy in front of the emulator that counts object downloads: media
// GETs of the JSON API (alt=media) and GETs of the XML API (any path outside /storage/v1/).
func (g *GCS) NewDownloads(t testing.TB) *Downloads {
	return newDownloads(t, "http://"+g.Endpoint, func(r *http.Request) bool {
		if r.Method != http.MethodGet {
			return false
		}
		return r.URL.Query().Get("alt") == "media" || !strings.HasPrefix(r.URL.Path, "/storage/v1/")
	})
}

// TempDir is a folder for an emulator's log outside any test's TempDir (the emulators live as
// long as the test binary).
func TempDir(prefix string) (string, error) { return os.MkdirTemp("", prefix) }
