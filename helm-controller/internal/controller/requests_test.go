package controller

import (
	"net/http"
	"strings"
	"sync"
)

// apiRequests records the reconciler's requests to the API server (those of its manager's
// client and of every client made from its config: Helm's, drift's, health's), so that a test
// can count what a reconcile asks.
type apiRequests struct {
	mu  sync.Mutex
	log []string // "METHOD path?query"
}

// wrap is a rest.Config's WrapTransport.
func (a *apiRequests) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		line := req.Method + " " + req.URL.Path
		if req.URL.RawQuery != "" {
			line += "?" + req.URL.RawQuery
		}
		a.mu.Lock()
		a.log = append(a.log, line)
		a.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

// mark is the position of the next request, for since.
func (a *apiRequests) mark() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.log)
}

// since lists the requests after mark about objects of namespace ns, watches left out (a
// watch that restarts is not the reconcile's).
func (a *apiRequests) since(mark int, ns string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, l := range a.log[mark:] {
		if strings.Contains(l, "/namespaces/"+ns+"/") && !strings.Contains(l, "watch=true") {
			out = append(out, l)
		}
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
