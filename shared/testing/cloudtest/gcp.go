package cloudtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// GCP is the GCE metadata server as the Google SDK reaches it with GCE_METADATA_HOST: the
// default service account's access token (with the Metadata-Flavor: Google header only) and
// the universe domain.
type GCP struct {
	// Host is 127.0.0.1:port, for GCE_METADATA_HOST.
	Host string
	// Token is the access token it issues (the registry password of user oauth2accesstoken).
	Token string

	mu       sync.Mutex
	lifetime time.Duration
	issued   int
	other    []string
}

// NewGCP starts the metadata server; tokens are valid for an hour unless SetLifetime says
// otherwise.
func NewGCP(t testing.TB, token string) *GCP {
	g := &GCP{Token: token, lifetime: time.Hour}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.Host = strings.TrimPrefix(srv.URL, "http://")
	return g
}

// SetLifetime sets how long the next tokens are valid.
func (g *GCP) SetLifetime(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lifetime = d
}

// Issued counts the tokens issued.
func (g *GCP) Issued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.issued
}

// Other lists the paths asked for that it does not serve.
func (g *GCP) Other() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.other...)
}

func (g *GCP) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing Metadata-Flavor:Google header", http.StatusForbidden)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r.URL.Path {
	case "/computeMetadata/v1/instance/service-accounts/default/token":
		g.issued++
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": g.Token, "expires_in": int(g.lifetime.Seconds()), "token_type": "Bearer",
		})
	case "/computeMetadata/v1/universe/universe-domain":
		_, _ = w.Write([]byte("googleapis.com"))
	case "/computeMetadata/v1/project/project-id":
		_, _ = w.Write([]byte("plumb-test"))
	default:
		g.other = append(g.other, r.URL.Path)
		http.NotFound(w, r)
	}
}
