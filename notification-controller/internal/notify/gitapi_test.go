package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestRepositoryAddresses(t *testing.T) {
	type repo struct{ base, owner, repo, err string }
	for in, want := range map[string]repo{
		"https://gitea.example.com/org/app.git":    {"https://gitea.example.com", "org", "app", ""},
		"https://example.com/git/org/app/":         {"https://example.com/git", "org", "app", ""},
		"https://user:pw@gitea.example.com/org/ap": {"https://gitea.example.com", "org", "ap", ""},
		"https://gitea.example.com/org":            {err: "gitea repository address https://gitea.example.com/org is not <host>/<owner>/<repository>"},
		"ssh://git@gitea.example.com/org/app":      {err: `gitea repository address "ssh://git@gitea.example.com/org/app" is not an http(s) URL`},
		"https://gitea.example.com/":               {err: "has no repository in its path"},
	} {
		t.Run(in, func(t *testing.T) {
			g := NewWithT(t)
			base, owner, name, err := ownerRepo("gitea", in)
			if want.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(want.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(repo{base.String(), owner, name, ""}).To(Equal(want))
		})
	}
}

func TestBitbucketServerAddresses(t *testing.T) {
	type repo struct{ base, project, slug string }
	for in, want := range map[string]repo{
		"https://bb.example.com/scm/PROJ/app.git":                  {"https://bb.example.com", "PROJ", "app"},
		"https://bb.example.com/bitbucket/scm/~jane/app.git":       {"https://bb.example.com/bitbucket", "~jane", "app"},
		"https://bb.example.com/projects/PROJ/repos/app/browse":    {"https://bb.example.com", "PROJ", "app"},
		"https://bb.example.com/ctx/projects/PROJ/repos/app":       {"https://bb.example.com/ctx", "PROJ", "app"},
		"https://bb.example.com/scm/PROJ/app/extra":                {},
		"https://bb.example.com/PROJ/app":                          {},
		"https://jane:s3cret@bb.example.com/projects/PROJ/app.git": {},
	} {
		t.Run(in, func(t *testing.T) {
			g := NewWithT(t)
			base, project, slug, err := bitbucketServerRepo(in)
			if want == (repo{}) {
				g.Expect(err).To(MatchError(ContainSubstring("is neither a clone URL")))
				g.Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(repo{base, project, slug}).To(Equal(want))
		})
	}
}

func TestAzureDevOpsAddresses(t *testing.T) {
	type repo struct{ project, repo string }
	for in, want := range map[string]repo{
		"https://dev.azure.com/org/proj/_git/app":                      {"https://dev.azure.com/org/proj", "app"},
		"https://org@dev.azure.com/org/My%20Project/_git/app":          {"https://dev.azure.com/org/My%20Project", "app"},
		"https://dev.azure.com/org/_git/app":                           {"https://dev.azure.com/org/app", "app"},
		"https://org.visualstudio.com/proj/_git/app":                   {"https://org.visualstudio.com/proj", "app"},
		"https://org.visualstudio.com/DefaultCollection/proj/_git/app": {"https://org.visualstudio.com/DefaultCollection/proj", "app"},
		"https://tfs.example.com/tfs/Collection/proj/_git/app":         {"https://tfs.example.com/tfs/Collection/proj", "app"},
		"https://dev.azure.com/org/proj/app":                           {},
		"https://dev.azure.com/_git/app":                               {},
		"https://dev.azure.com/org/proj/_git/app/pullrequest/12":       {},
	} {
		t.Run(in, func(t *testing.T) {
			g := NewWithT(t)
			project, name, err := azureDevOpsRepo(in)
			if want == (repo{}) {
				g.Expect(err).To(MatchError(ContainSubstring("is not <organization or collection>/<project>/_git/<repository>")))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(repo{project, name}).To(Equal(want))
		})
	}
}

// The name and description of a commit status: the defaults, the expressions' results (a long
// description cut at 130 characters), and an expression's failure or empty name as the
// delivery's error.
func TestStatusText(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	name, desc, err := StatusText{}.of(ctx, sample)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect([]string{name, desc}).To(Equal([]string{"Kustomization/shop/api", "Succeeded: Deployment/shop/api configured"}))

	text := func(s string, err error) func(context.Context, Notification) (string, error) {
		return func(context.Context, Notification) (string, error) { return s, err }
	}
	name, desc, err = StatusText{Name: text("deploy/prod", nil), Description: text("synced to prod", nil)}.of(ctx, sample)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect([]string{name, desc}).To(Equal([]string{"deploy/prod", "synced to prod"}))

	_, _, err = StatusText{Description: text("", errors.New("no such key: env"))}.of(ctx, sample)
	g.Expect(err).To(MatchError("commitStatusDescriptionExpr: no such key: env"))
	_, _, err = StatusText{Name: text(" ", nil)}.of(ctx, sample)
	g.Expect(err).To(MatchError("commitStatusExpr returned an empty name for Kustomization/shop/api"))
}

// A list is read page by page through the Link header, and never from another server: the
// credential stays with the API.
func TestFindInPages(t *testing.T) {
	g := NewWithT(t)
	var other *httptest.Server
	var auths []string
	mux := http.NewServeMux()
	mux.HandleFunc("/items", func(w http.ResponseWriter, r *http.Request) {
		auths = append(auths, r.Header.Get("Authorization"))
		switch r.URL.Query().Get("page") {
		case "":
			w.Header().Set("Link", `<http://`+r.Host+`/items?page=2>; rel="next", <http://`+r.Host+`/items?page=9>; rel="last"`)
			_, _ = w.Write([]byte(`[1, 2]`))
		case "2":
			w.Header().Set("Link", `<`+other.URL+`/items?page=3>; rel="next"`)
			_, _ = w.Write([]byte(`[3]`))
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	other = httptest.NewServer(mux)
	defer other.Close()
	api := restAPI{auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer t") }}

	got, found, err := findInPages(context.Background(), api, srv.URL+"/items", func(i int) bool { return i == 3 })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue())
	g.Expect(got).To(Equal(3))
	_, _, err = findInPages(context.Background(), api, srv.URL+"/items", func(i int) bool { return i == 4 })
	g.Expect(err).To(MatchError(ContainSubstring("the next page is on another server (" + other.URL + ")")))
	g.Expect(auths).To(HaveLen(4), "nothing was sent to the other server")
}

func TestHostMessages(t *testing.T) {
	api := restAPI{secrets: []string{"tok3n"}}
	for body, want := range map[string]string{
		`{"message": "Bad credentials"}`:                                  "Bad credentials",
		`{"message": {"name": ["is too long"]}}`:                          `{"name":["is too long"]}`,
		`{"error": "insufficient_scope"}`:                                 "insufficient_scope",
		`{"type": "error", "error": {"message": "Repository not found"}}`: "Repository not found",
		`{"errors": [{"message": "Authentication failed"}]}`:              "Authentication failed",
		`{"message": "token tok3n is\n  expired"}`:                        "token *** is expired",
		`<html>bad gateway</html>`:                                        "",
	} {
		if got := api.hostMessage([]byte(body)); got != want {
			t.Errorf("hostMessage(%s) = %q, want %q", body, got, want)
		}
	}
}

func TestRateLimitWait(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"30"}, "X-Ratelimit-Reset": {"1100"}}, 30 * time.Second},
		{http.Header{"X-Ratelimit-Reset": {"1100"}}, 100 * time.Second},
		{http.Header{"X-Ratelimit-Reset": {"999999"}}, 10 * time.Minute},
		{http.Header{"X-Ratelimit-Reset": {"900"}}, 0},
	} {
		if got := rateLimitWait(tc.h, now); got != tc.want {
			t.Errorf("rateLimitWait(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}
