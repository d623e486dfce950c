package controller

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

type ctrlRequest = ctrl.Request

// bearerServer fronts the Git server with one that accepts only the bearer token, and returns
// the repository's URL through it.
func bearerServer(t *testing.T, repoURL, token string) string {
	t.Helper()
	target, err := url.Parse(gitServer.HTTPAddress())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		r.SetBasicAuth(gitUser, gitPassword)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(repoURL)
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL + u.Path
}

// gauge returns the value of a gauge of the controller-runtime registry with the labels given.
func gauge(name string, labels map[string]string) (float64, bool) {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		return 0, false
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
