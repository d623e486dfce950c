// Package artifacttest serves artifacts on loopback as a source producer does (see
// docs/contracts/artifact.md), for the tests of the controllers that consume them.
package artifacttest

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Server serves published artifacts at content-addressed paths on a loopback port.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:<port>.
	URL string

	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

// NewServer starts a server; Close stops it.
func NewServer() *Server {
	s := &Server{files: map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, ok := s.files[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(data)
}

// Publish serves data at /<sha256><ext> and returns the status.artifact a producer would write
// for it at revision.
func (s *Server) Publish(revision, ext string, data []byte) meta.Artifact {
	sum := fmt.Sprintf("%x", sha256.Sum256(data))
	path := "/" + sum + ext
	s.mu.Lock()
	s.files[path] = data
	s.mu.Unlock()
	size := int64(len(data))
	return meta.Artifact{URL: s.URL + path, Path: path, Revision: revision, Digest: "sha256:" + sum, Size: &size, LastUpdateTime: metav1.Now()}
}
