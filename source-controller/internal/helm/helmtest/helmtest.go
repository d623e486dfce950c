// Package helmtest makes chart repositories for tests and benchmarks: charts packaged with the
// Helm SDK, an index.yaml written by the SDK's repo code, served over HTTP on loopback.
package helmtest

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
)

// Chart returns a small chart: a ConfigMap whose data comes from the values, with a second
// values file values-prod.yaml.
func Chart(name, version string) *chart.Chart {
	return &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: name, Version: version, AppVersion: version, Type: "application"},
		Templates: []*chart.File{{
			Name: "templates/configmap.yaml",
			Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n"),
		}},
		Values: map[string]any{"greeting": "hello"},
		Raw:    []*chart.File{{Name: "values.yaml", Data: []byte("greeting: hello\n")}},
		Files:  []*chart.File{{Name: "values-prod.yaml", Data: []byte("greeting: hello prod\nreplicas: 3\n")}},
	}
}

// Package writes the chart as <name>-<version>.tgz into dir and returns its path.
func Package(dir string, c *chart.Chart) (string, error) { return chartutil.Save(c, dir) }

// Index writes dir/index.yaml for the packaged charts in dir, with baseURL as their address.
func Index(dir, baseURL string) error {
	idx, err := repo.IndexDirectory(dir, baseURL)
	if err != nil {
		return err
	}
	return idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644)
}

// Server serves dir over HTTP on loopback; with a user, it asks for basic auth.
type Server struct {
	*httptest.Server
	Dir string
	// Downloads counts the chart packages (.tgz) served.
	Downloads atomic.Int64
}

// NewServer starts a server for dir.
func NewServer(dir, user, password string) *Server {
	s := &Server{Dir: dir}
	files := http.FileServer(http.Dir(dir))
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".tgz") {
			s.Downloads.Add(1)
		}
		files.ServeHTTP(w, r)
	})
	if user != "" {
		files := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			files.ServeHTTP(w, r)
		})
	}
	s.Server = httptest.NewServer(h)
	return s
}
