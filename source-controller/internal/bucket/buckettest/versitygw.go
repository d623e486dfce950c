// Package buckettest runs a real S3 server on loopback for the Bucket tests: the Versity S3
// Gateway (github.com/versity/versitygw) with its posix backend, built once from the Go module
// proxy into $PLUMB_CACHE/bin/versitygw-<version>/ like the control-plane binaries. MinIO's own
// server is not used: `go install github.com/minio/minio@latest` did not finish within ten
// minutes on a 2-core machine (hundreds of modules, cloud SDKs included), and MinIO publishes
// no module versions to pin.
package buckettest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the versitygw release the tests run.
const Version = "v1.8.0"

// Module is the package built.
const Module = "github.com/versity/versitygw/cmd/versitygw"

// Path returns the cached binary's path: $PLUMB_CACHE (default ~/.cache/plumb)
// /bin/versitygw-<Version>/versitygw.
func Path() string {
	return filepath.Join(cacheDir(), "bin", "versitygw-"+Version, "versitygw")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the versitygw binary, building it once (a few minutes the first time) when it
// is not cached. Processes that build at once take turns on a lock file.
func Binary() (string, error) {
	buildOnce.Do(func() {
		binPath = Path()
		buildErr = goInstall(binPath, Module, Version)
	})
	return binPath, buildErr
}

// cacheDir returns $PLUMB_CACHE, by default ~/.cache/plumb.
func cacheDir() string {
	cache := os.Getenv("PLUMB_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "plumb")
	}
	return cache
}

// goInstall builds module@version into bin unless it is there, taking turns with other
// processes on a lock file in bin's folder.
func goInstall(bin, module, version string) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	dir := filepath.Dir(bin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	if _, err := os.Stat(bin); err == nil {
		return nil // another process built it meanwhile
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", module+"@"+version)
	// Outside any workspace: go install of a versioned package ignores go.work anyway, but the
	// environment of a test run may set GOFLAGS=-mod=... that install refuses.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=-buildvcs=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go install %s@%s: %v: %s", module, version, err, lastLines(out.String(), 20))
	}
	return os.Rename(filepath.Join(tmp, filepath.Base(bin)), bin)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Server is a running versitygw with the posix backend.
type Server struct {
	// Endpoint is 127.0.0.1:port, plain HTTP.
	Endpoint string
	// AccessKey and SecretKey are the root account's.
	AccessKey, SecretKey string
	// Root is the folder whose subfolders are the buckets.
	Root string

	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs versitygw on a free loopback port with the root account's keys, its data in dir.
func Start(dir, accessKey, secretKey string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	root, meta := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	for _, d := range []string{root, meta} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := l.Addr().String()
	_ = l.Close()
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", host, "--quiet", "posix", "--sidecar", meta, root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	s := &Server{Endpoint: host, AccessKey: accessKey, SecretKey: secretKey, Root: root, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/")
		if err == nil {
			_ = resp.Body.Close()
			return s, nil
		}
		select {
		case <-s.done:
			data, _ := os.ReadFile(filepath.Join(dir, "versitygw.log"))
			return nil, fmt.Errorf("versitygw exited: %s", data)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw not answering on %s after 30 s", host)
		}
	}
}

// Stop ends the server.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

// Client is an S3 client of the root account.
func (s *Server) Client() (*minio.Client, error) {
	return minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: "us-east-1"})
}

// MakeBucket creates a bucket with the objects (key → content).
func (s *Server) MakeBucket(ctx context.Context, name string, objects map[string]string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		return err
	}
	return s.Put(ctx, name, objects)
}

// Put writes objects (key → content) into a bucket; an empty content deletes the key.
func (s *Server) Put(ctx context.Context, bucket string, objects map[string]string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	for k, v := range objects {
		if v == "" {
			if err := c.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{}); err != nil {
				return err
			}
			continue
		}
		if _, err := c.PutObject(ctx, bucket, k, strings.NewReader(v), int64(len(v)), minio.PutObjectOptions{}); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
	}
	return nil
}

// Counter is a loopback reverse proxy in front of the server that counts the requests that
// download an object (GET of a key, not of a bucket listing or location). The Host header goes
// through unchanged, so the client's signatures still match.
type Counter struct {
	// Endpoint is the proxy's 127.0.0.1:port, for spec.endpoint.
	Endpoint string
	gets     atomic.Int64
	lists    atomic.Int64
	heads    atomic.Int64
	auth     atomic.Value // last Authorization header's Credential=<key>/..., no signature
}

// NewCounter starts a counting proxy in front of s.
func (s *Server) NewCounter(t testing.TB) *Counter {
	target := &url.URL{Scheme: "http", Host: s.Endpoint}
	rp := httputil.NewSingleHostReverseProxy(target)
	c := &Counter{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.count(r)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return c
}

func (c *Counter) count(r *http.Request) {
	if a := r.Header.Get("Authorization"); a != "" {
		if i := strings.Index(a, "Credential="); i >= 0 {
			cred := a[i+len("Credential="):]
			if j := strings.IndexByte(cred, '/'); j >= 0 {
				c.auth.Store(cred[:j])
			}
		}
	}
	path := strings.Trim(r.URL.Path, "/")
	isObject := strings.Contains(path, "/")
	switch {
	case r.Method == http.MethodGet && isObject:
		c.gets.Add(1)
	case r.Method == http.MethodGet && r.URL.Query().Has("list-type"):
		c.lists.Add(1)
	case r.Method == http.MethodHead && isObject:
		c.heads.Add(1)
	}
}

// Gets is the number of object downloads so far.
func (c *Counter) Gets() int { return int(c.gets.Load()) }

// Lists is the number of listing requests so far.
func (c *Counter) Lists() int { return int(c.lists.Load()) }

// Heads is the number of object HEAD requests so far.
func (c *Counter) Heads() int { return int(c.heads.Load()) }

// AccessKey is the access key of the last signed request ("" before any).
func (c *Counter) AccessKey() string {
	v, _ := c.auth.Load().(string)
	return v
}
