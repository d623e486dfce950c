package dashboard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// benchN is the number of Kustomizations of the benchmarks: hack/bench apply's size, or
// $PLUMB_DASHBOARD_BENCH_N.
func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("PLUMB_DASHBOARD_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 1000
}

var (
	benchOnce sync.Once
	benchNS   string
)

// benchObjects creates, once, what hack/bench apply leaves behind: one GitRepository and
// benchN() Kustomizations of four objects each, Ready, with their status as apply-controller
// writes it, in namespace bench-…; and waits until the admin dashboard has them all.
func benchObjects(b *testing.B) string {
	benchOnce.Do(func() {
		g := NewWithT(b)
		ns := newNamespace(g)
		gitRepository(g, ns, "apps", "http://127.0.0.1:1/a.tar.gz", "sha256:00")
		var wg sync.WaitGroup
		work := make(chan int)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					name := fmt.Sprintf("app-%04d", i)
					kustomization(g, ns, name, map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "apps"}, "targetNamespace": ns},
						"True", "ReconciliationSucceeded", "Applied revision: main@sha1:1a2b3c",
						ns+"_"+name+"_apps_Deployment", ns+"_"+name+"__Service", ns+"_"+name+"__ServiceAccount", ns+"_"+name+"__ConfigMap")
				}
			}()
		}
		for i := range benchN() {
			work <- i
		}
		close(work)
		wg.Wait()
		page(g, admin, "/?ns="+ns, fmt.Sprintf("of %d", benchN()+1))
		benchNS = ns
	})
	return benchNS
}

// serve times one request to the dashboard's handler, without the network.
func serve(b *testing.B, h http.Handler, path string) {
	b.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = "127.0.0.1:9999"
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
	}
}

// Server time of the pages on 1,000 Kustomizations (docs/benchmarks.md):
//
//	go test -run '^$' -bench . -benchtime 20x ./cli/internal/dashboard/
//
// PLUMB_DASHBOARD_BENCH_N=5000 measures 5,000.
func BenchmarkPages(b *testing.B) {
	ns := benchObjects(b)
	h := admin.Config.Handler
	for _, tc := range []struct{ name, path string }{
		{"overview", "/"},
		{"overview-namespace", "/?ns=" + ns},
		{"overview-search", "/?q=app-09"},
		{"graph", "/graph"},
		{"graph-namespace", "/graph?ns=" + ns},
		{"object", "/o/apply.plumb.dev/Kustomization/" + ns + "/app-0500?fragment=object"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var worst time.Duration
			for b.Loop() {
				start := time.Now()
				serve(b, h, tc.path)
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
		})
	}
}
