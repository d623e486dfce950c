package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestOverview(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(g)
	gitRepository(g, ns, "repo", "http://127.0.0.1:1/a.tar.gz", "sha256:00")
	kustomization(g, ns, "infra", nil, "True", "ReconciliationSucceeded", "Applied revision: main@sha1:1a2b3c")
	kustomization(g, ns, "apps", nil, "False", "BuildFailed", "kustomize build ./apps: accumulating resources: missing.yaml")
	object(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "paused",
		map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"}, "interval": "5m", "prune": true, "suspend": true}, nil)

	body := page(g, admin, "/?ns="+ns, "infra", "apps", "paused", "repo")
	g.Expect(body).To(ContainSubstring("Namespace " + ns))
	g.Expect(body).To(ContainSubstring("BuildFailed"))
	g.Expect(body).To(ContainSubstring("kustomize build ./apps: accumulating resources: missing.yaml"))
	g.Expect(body).To(ContainSubstring("main@sha1:1a2b3c"))
	g.Expect(body).To(ContainSubstring(`href="/o/apply.plumb.dev/Kustomization/` + ns + `/apps"`))
	// The state is written out, not only coloured.
	g.Expect(body).To(MatchRegexp(`data-key="apply.plumb.dev/Kustomization/` + ns + `/apps">(?s).*?✖</span> Failed`))
	g.Expect(body).To(MatchRegexp(`data-key="apply.plumb.dev/Kustomization/` + ns + `/paused">(?s).*?‖</span> Suspended`))
	// The totals of this namespace: 2 Ready (the GitRepository and infra), 1 Failed, 1 Suspended.
	totals, err := between(body, `id="totals-h"`, `</ul>`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(totals).To(ContainSubstring("Ready</span>: <strong>2</strong>"))
	g.Expect(totals).To(ContainSubstring("Failed</span>: <strong>1</strong>"))
	g.Expect(totals).To(ContainSubstring("Suspended</span>: <strong>1</strong>"))

	// Filters: state, kind, search.
	body = page(g, admin, "/?ns="+ns+"&state=failing", "apps")
	g.Expect(body).NotTo(ContainSubstring(`/Kustomization/` + ns + `/infra"`))
	body = page(g, admin, "/?ns="+ns+"&kind=GitRepository", "repo")
	g.Expect(body).NotTo(ContainSubstring(`/Kustomization/` + ns + `/apps"`))
	body = page(g, admin, "/?q="+url.QueryEscape(ns+" missing.yaml"), "/Kustomization/"+ns+"/apps")
	g.Expect(body).NotTo(ContainSubstring(`/Kustomization/` + ns + `/infra"`))

	// A fragment is the part the live updates swap in: no layout around it.
	code, frag := get(g, admin, "/?ns="+ns+"&fragment=overview")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(frag).To(ContainSubstring("/Kustomization/" + ns + "/apps"))
	g.Expect(frag).NotTo(ContainSubstring("<html"))
	code, _ = get(g, admin, "/?fragment=nope")
	g.Expect(code).To(Equal(http.StatusNotFound))
}

func TestOverviewPages(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(g)
	for i := range pageSize + 5 {
		kustomization(g, ns, fmt.Sprintf("app-%03d", i), nil, "True", "ReconciliationSucceeded", "Applied")
	}
	body := page(g, admin, "/?ns="+ns, fmt.Sprintf("of %d", pageSize+5))
	g.Expect(body).To(ContainSubstring("1–100 of 105"))
	g.Expect(body).To(ContainSubstring("/" + ns + "/app-099\""))
	g.Expect(body).NotTo(ContainSubstring("/" + ns + "/app-100\""))
	g.Expect(body).To(ContainSubstring(`rel="next"`))
	body = page(g, admin, "/?ns="+ns+"&page=2", "101–105 of 105")
	g.Expect(body).To(ContainSubstring("/" + ns + "/app-104\""))
	g.Expect(body).To(ContainSubstring(`rel="prev"`))
	g.Expect(strings.Count(body, `<tr data-key=`)).To(Equal(5))
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr      string
		inCluster bool
		ok        bool
	}{
		{"127.0.0.1:9999", false, true},
		{"[::1]:9999", false, true},
		{"localhost:9999", false, true},
		{"0.0.0.0:9999", false, false},
		{":9999", false, false},
		{"192.168.1.5:9999", false, false},
		{":9999", true, true},
		{"no-port", false, false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := CheckAddr(tc.addr, tc.inCluster)
			if (err == nil) != tc.ok {
				t.Errorf("CheckAddr(%q, %v) = %v, want ok %v", tc.addr, tc.inCluster, err, tc.ok)
			}
		})
	}
}

// A page whose name an attacker points at 127.0.0.1 (DNS rebinding) gets nothing.
func TestOnlyLoopbackNames(t *testing.T) {
	g := NewWithT(t)
	for host, want := range map[string]int{
		"127.0.0.1:9999": http.StatusOK, "localhost:9999": http.StatusOK, "[::1]:9999": http.StatusOK, "localhost": http.StatusOK,
		"evil.example:9999": http.StatusMisdirectedRequest, "10.0.0.1:9999": http.StatusMisdirectedRequest,
	} {
		req, err := http.NewRequest(http.MethodGet, admin.URL+"/", nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(want), host)
	}
}
