package artifact_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/plumb-dev/plumb/shared/artifact"
)

// server serves answers on loopback; answer gets the 1-based number of the request.
type server struct {
	*httptest.Server
	requests atomic.Int32
}

func serve(t *testing.T, answer func(n int32, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(s.requests.Add(1), w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func digestOf(b []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

func artifactFor(url string, data []byte) *meta.Artifact {
	return &meta.Artifact{
		Path:     "gitrepository/ns/name/sha.tar.gz",
		URL:      url + "/gitrepository/ns/name/sha.tar.gz",
		Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567",
		Digest:   digestOf(data),
	}
}

var sampleFiles = []file{
	{name: "kustomization.yaml", body: "resources: [app.yaml]\n"},
	{name: "app.yaml", body: "kind: ConfigMap\n"},
	{name: "scripts/run.sh", body: "#!/bin/sh\n", exec: true},
	{name: "current", link: "app.yaml"},
}

var sampleTree = []string{
	"f app.yaml - kind: ConfigMap\n",
	"l current app.yaml",
	"f kustomization.yaml - resources: [app.yaml]\n",
	"d scripts",
	"f scripts/run.sh x #!/bin/sh\n",
}

func TestFetchAndExtract(t *testing.T) {
	data := writeArtifact(t, sampleFiles)
	srv := serve(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/gitrepository/ns/name/sha.tar.gz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(data)
	})
	f := &artifact.Fetcher{Client: srv.Client()}
	a := artifactFor(srv.URL, data)

	got, err := f.Fetch(t.Context(), a)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("Fetch returned %d bytes, not the %d served", len(got), len(data))
	}

	s := newSandbox(t)
	if err := f.FetchAndExtract(t.Context(), a, s.dest); err != nil {
		t.Fatalf("FetchAndExtract: %v", err)
	}
	if tree := treeOf(t, s.dest); !slices.Equal(tree, sampleTree) {
		t.Errorf("extracted tree:\n%q\nwant:\n%q", tree, sampleTree)
	}
	s.checkNothingOutside(t)
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestFetchDefaultClient(t *testing.T) {
	data := writeArtifact(t, sampleFiles)
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(data) })
	got, err := (&artifact.Fetcher{}).Fetch(t.Context(), artifactFor(srv.URL, data))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("Fetch with a zero Fetcher: %d bytes, %v", len(got), err)
	}
}

func TestFetch(t *testing.T) {
	data := writeArtifact(t, sampleFiles)
	other := writeArtifact(t, []file{{name: "other", body: "x"}})
	ok := func(_ int32, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(data) }
	for _, tc := range []struct {
		name    string
		fetcher artifact.Fetcher
		answer  func(n int32, w http.ResponseWriter, r *http.Request)
		// artifact changes the artifact pointing at the server.
		artifact func(a *meta.Artifact)
		// wantErr is empty on success, else a part of the error message.
		wantErr      string
		wantIs       error
		wantRequests int32
	}{
		{
			name:         "good fetch",
			answer:       ok,
			wantRequests: 1,
		},
		{
			name:         "digest mismatch",
			answer:       func(_ int32, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(other) },
			wantErr:      "digest mismatch",
			wantIs:       artifact.ErrDigestMismatch,
			wantRequests: 1,
		},
		{
			name:   "digest in upper case hex is not matched",
			answer: ok,
			artifact: func(a *meta.Artifact) {
				a.Digest = "sha256:" + strings.ToUpper(strings.TrimPrefix(a.Digest, "sha256:"))
			},
			wantIs:       artifact.ErrDigestMismatch,
			wantRequests: 1,
		},
		{
			name:         "not found is not retried",
			answer:       func(_ int32, w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
			wantErr:      "404",
			wantRequests: 1,
		},
		{
			name:         "forbidden is not retried",
			fetcher:      artifact.Fetcher{Retries: 5},
			answer:       func(_ int32, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) },
			wantErr:      "403",
			wantRequests: 1,
		},
		{
			name:    "no content is an error",
			answer:  func(_ int32, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) },
			wantErr: "204",
			// Not retried: only 5xx and network errors are.
			wantRequests: 1,
		},
		{
			name:    "500 twice then 200",
			fetcher: artifact.Fetcher{Retries: 2},
			answer: func(n int32, w http.ResponseWriter, r *http.Request) {
				if n <= 2 {
					http.Error(w, "try again", http.StatusInternalServerError)
					return
				}
				ok(n, w, r)
			},
			wantRequests: 3,
		},
		{
			name:    "503 once then 200 with default retries",
			fetcher: artifact.Fetcher{},
			answer: func(n int32, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				ok(n, w, r)
			},
			wantRequests: 2,
		},
		{
			name:         "500 more often than retried",
			fetcher:      artifact.Fetcher{Retries: 1},
			answer:       func(_ int32, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) },
			wantErr:      "502",
			wantRequests: 2,
		},
		{
			name:    "connection dropped once then 200",
			fetcher: artifact.Fetcher{Retries: 1},
			answer: func(n int32, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						_ = conn.Close()
					}
					return
				}
				ok(n, w, r)
			},
			wantRequests: 2,
		},
		{
			name:         "body larger than MaxSize with a length",
			fetcher:      artifact.Fetcher{MaxSize: int64(len(data)) - 1},
			answer:       ok,
			wantErr:      "over the limit",
			wantRequests: 1,
		},
		{
			name:    "body larger than MaxSize without a length",
			fetcher: artifact.Fetcher{MaxSize: int64(len(data)) - 1},
			answer: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				// Two writes with a flush between make the answer chunked, with no length.
				_, _ = w.Write(data[:10])
				w.(http.Flusher).Flush()
				_, _ = w.Write(data[10:])
			},
			wantErr:      "over the limit",
			wantRequests: 1,
		},
		{
			name:         "body exactly MaxSize",
			fetcher:      artifact.Fetcher{MaxSize: int64(len(data))},
			answer:       ok,
			wantRequests: 1,
		},
		{
			name:         "unsupported digest algorithm",
			answer:       ok,
			artifact:     func(a *meta.Artifact) { a.Digest = "sha512:" + strings.Repeat("0", 128) },
			wantErr:      "unsupported digest",
			wantRequests: 0,
		},
		{
			name:         "digest without algorithm",
			answer:       ok,
			artifact:     func(a *meta.Artifact) { a.Digest = strings.TrimPrefix(a.Digest, "sha256:") },
			wantErr:      "unsupported digest",
			wantRequests: 0,
		},
		{
			name:         "short digest",
			answer:       ok,
			artifact:     func(a *meta.Artifact) { a.Digest = a.Digest[:20] },
			wantErr:      "unsupported digest",
			wantRequests: 0,
		},
		{
			name:         "empty digest",
			answer:       ok,
			artifact:     func(a *meta.Artifact) { a.Digest = "" },
			wantErr:      "unsupported digest",
			wantRequests: 0,
		},
		{
			name:         "empty URL",
			answer:       ok,
			artifact:     func(a *meta.Artifact) { a.URL = "" },
			wantErr:      "no artifact URL",
			wantRequests: 0,
		},
		{
			name:         "malformed URL",
			answer:       ok,
			artifact:     func(a *meta.Artifact) { a.URL = "http://[::1" },
			wantErr:      "artifact URL",
			wantRequests: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, tc.answer)
			f := tc.fetcher
			f.Client = srv.Client()
			a := artifactFor(srv.URL, data)
			if tc.artifact != nil {
				tc.artifact(a)
			}
			got, err := f.Fetch(t.Context(), a)
			switch {
			case tc.wantErr == "" && tc.wantIs == nil:
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Errorf("Fetch returned %d bytes, not the %d served", len(got), len(data))
				}
			default:
				if err == nil {
					t.Fatalf("Fetch succeeded with %d bytes, want an error", len(got))
				}
				if got != nil {
					t.Errorf("Fetch returned %d bytes with its error", len(got))
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("got %v, want an error wrapping %v", err, tc.wantIs)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %q, want it to mention %q", err, tc.wantErr)
				}
			}
			if n := srv.requests.Load(); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

func TestFetchNilArtifact(t *testing.T) {
	if _, err := (&artifact.Fetcher{}).Fetch(t.Context(), nil); err == nil {
		t.Error("Fetch of a nil artifact succeeded")
	}
}

func TestFetchCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		// Canceled while the first attempt fails: no retry may follow.
		cancel()
		w.WriteHeader(http.StatusInternalServerError)
	})
	data := writeArtifact(t, sampleFiles)
	_, err := (&artifact.Fetcher{Client: srv.Client(), Retries: 5}).Fetch(ctx, artifactFor(srv.URL, data))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want an error wrapping context.Canceled", err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestFetchNegativeRetries: Retries 0 means the default of 2, so -1 is the natural way to ask for
// no retry; but then the attempt loop never runs and Fetch returns no data and no error.
func TestFetchNegativeRetries(t *testing.T) {
	data := writeArtifact(t, sampleFiles)
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(data) })
	got, err := (&artifact.Fetcher{Client: srv.Client(), Retries: -1}).Fetch(t.Context(), artifactFor(srv.URL, data))
	if err == nil && !bytes.Equal(got, data) {
		t.Errorf("Fetch returned %d bytes and no error, want the %d served or an error", len(got), len(data))
	}
}

func TestFetchAndExtractErrors(t *testing.T) {
	safe := writeArtifact(t, sampleFiles)
	for _, tc := range []struct {
		name    string
		data    []byte
		limits  artifact.Limits
		wantIs  error
		wantErr string
	}{
		{
			name:   "absolute path",
			data:   rawTarGz(t, []raw{reg("/tmp/pwned", "x")}),
			wantIs: artifact.ErrUnsafe,
		},
		{
			name:   "dot dot",
			data:   rawTarGz(t, []raw{reg("../pwned", "x")}),
			wantIs: artifact.ErrUnsafe,
		},
		{
			name:   "symlink out of the root",
			data:   rawTarGz(t, []raw{symlink("l", "../sibling")}),
			wantIs: artifact.ErrUnsafe,
		},
		{
			name:   "file below a symlink",
			data:   rawTarGz(t, []raw{symlink("l", "."), reg("l/x", "x")}),
			wantIs: artifact.ErrUnsafe,
		},
		{
			name:   "the Fetcher's limits apply",
			data:   safe,
			limits: artifact.Limits{MaxFiles: 2},
			wantIs: artifact.ErrUnsafe,
		},
		{
			name:    "not a tarball",
			data:    []byte("<html>not an artifact</html>"),
			wantErr: "read archive",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(tc.data) })
			a := artifactFor(srv.URL, tc.data)
			s := newSandbox(t)
			f := &artifact.Fetcher{Client: srv.Client(), Limits: tc.limits}
			err := f.FetchAndExtract(t.Context(), a, s.dest)
			if err == nil {
				t.Fatal("FetchAndExtract succeeded, want an error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("got %v, want an error wrapping %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), a.URL) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %q, want it to name %s and mention %q", err, a.URL, tc.wantErr)
			}
			if errors.Is(err, artifact.ErrDigestMismatch) {
				t.Errorf("got a digest mismatch for a well-advertised artifact: %v", err)
			}
			s.checkNothingOutside(t)
			if _, err := os.Stat(filepath.Join(s.base, "pwned")); err == nil {
				t.Error("pwned written next to dest")
			}
			if n := srv.requests.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestFetchAndExtractFetchErrorLeavesNothing(t *testing.T) {
	data := writeArtifact(t, sampleFiles)
	srv := serve(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(data) })
	a := artifactFor(srv.URL, data)
	a.Digest = digestOf([]byte("something else"))
	s := newSandbox(t)
	err := (&artifact.Fetcher{Client: srv.Client()}).FetchAndExtract(t.Context(), a, s.dest)
	if !errors.Is(err, artifact.ErrDigestMismatch) {
		t.Fatalf("got %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(s.dest); err == nil {
		t.Errorf("dest created although the download was refused")
	}
	s.checkNothingOutside(t)
}
