package controller

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
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
