package gitauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
	gogit "github.com/go-git/go-git/v5"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/proxy"
	"github.com/plumb-dev/plumb/shared/testing/githubtest"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

// appSecret is the Secret of the test API's app, with its installation ID.
func appSecret(api *githubtest.Server) map[string][]byte {
	return map[string][]byte{
		GitHubAppIDKey:             []byte(strconv.FormatInt(api.AppID, 10)),
		GitHubAppInstallationIDKey: []byte(strconv.FormatInt(api.InstallationID, 10)),
		GitHubAppPrivateKeyKey:     api.PrivateKeyPEM,
		GitHubAppBaseURLKey:        []byte(api.URL),
	}
}

// gitServerFor serves one repository over HTTP that only the app's first installation token
// opens, as GitHub's Git server does with x-access-token.
func gitServerFor(t *testing.T, api *githubtest.Server) string {
	t.Helper()
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(srv.Root()) })
	srv.Auth(GitHubAccessTokenUser, api.Token(1))
	fixture := t.TempDir()
	if err := os.WriteFile(filepath.Join(fixture, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.InitRepo(fixture, "main", "acme/app.git"); err != nil {
		t.Fatal(err)
	}
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	return srv.HTTPAddress() + "/acme/app.git"
}

func clone(ctx context.Context, r Remote) error {
	_, err := gogit.CloneContext(ctx, memory.NewStorage(), nil, &gogit.CloneOptions{URL: r.URL, Auth: r.Auth, CABundle: r.CABundle,
		ProxyOptions: r.Proxy.Options(r.URL), Depth: 1})
	return err
}

// The installation token opens the Git server; two remotes of the app make one token request;
// the token goes as basic auth with x-access-token.
func TestProviderRemote_GitHubApp(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	api := githubtest.New(t)
	repoURL := gitServerFor(t, api)

	r, err := ProviderRemote(ctx, repoURL, Source{Provider: ProviderGitHub, Secret: appSecret(api)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Auth).To(Equal(&githttp.BasicAuth{Username: "x-access-token", Password: api.Token(1)}))
	g.Expect(clone(ctx, r)).To(Succeed())

	// A second object of the same app and installation: the cached token.
	r2, err := ProviderRemote(ctx, repoURL, Source{Provider: ProviderGitHub, Secret: appSecret(api)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(clone(ctx, r2)).To(Succeed())
	g.Expect(api.Issued()).To(HaveLen(1))
	g.Expect(api.Refused()).To(BeEmpty())

	// Without the app, the Git server refuses.
	g.Expect(clone(ctx, Remote{URL: repoURL})).NotTo(Succeed())
}

// The installation is looked up by owner when the Secret names no ID.
func TestProviderRemote_GitHubAppOwner(t *testing.T) {
	g := NewWithT(t)
	api := githubtest.New(t)
	repoURL := gitServerFor(t, api)
	secret := appSecret(api)
	delete(secret, GitHubAppInstallationIDKey)
	secret[GitHubAppInstallationOwnerKey] = []byte(api.Owner)
	r, err := ProviderRemote(context.Background(), repoURL, Source{Provider: ProviderGitHub, Secret: secret})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(clone(context.Background(), r)).To(Succeed())
	g.Expect(api.Lookups()).To(Equal(1))
	g.Expect(api.Issued()).To(HaveLen(1))
}

// The token request goes through the object's proxy.
func TestProviderRemote_GitHubAppProxy(t *testing.T) {
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	g := NewWithT(t)
	api := githubtest.New(t)
	px := nettest.NewProxy(t, "proxy-user", "proxy-pa55")
	p, err := proxy.Parse(px.URL.String(), "proxy-user", "proxy-pa55")
	g.Expect(err).NotTo(HaveOccurred())
	repoURL := gitServerFor(t, api)
	r, err := ProviderRemote(context.Background(), repoURL, Source{Provider: ProviderGitHub, Secret: appSecret(api), Proxy: p})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(px.Served(api.URL[len("http://"):])).To(BeNumerically(">=", 1))
	g.Expect(clone(context.Background(), r)).To(Succeed())
}

// A token is used until 80% of its life has passed, then a new one is asked for; concurrent
// callers make one request; the cache keeps at most its size.
func TestGitHubTokens(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	api := githubtest.New(t)
	app, err := GitHubAppFromSecret(appSecret(api), "")
	g.Expect(err).NotTo(HaveOccurred())

	now := time.Now()
	var mu sync.Mutex
	c := NewGitHubTokens(1)
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			tok, err := c.Token(ctx, app, nil)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tok.Token).To(Equal(api.Token(1)))
		})
	}
	wg.Wait()
	g.Expect(api.Issued()).To(HaveLen(1))

	advance(40 * time.Minute) // of 60: still fresh
	tok, err := c.Token(ctx, app, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.Token).To(Equal(api.Token(1)))

	advance(9 * time.Minute) // 49 of 60: near expiry, renewed
	tok, err = c.Token(ctx, app, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.Token).To(Equal(api.Token(2)))
	g.Expect(api.Issued()).To(HaveLen(2))

	// A token that the API gives for two minutes only is renewed after 96 seconds.
	api.SetTokenTTL(2 * time.Minute)
	advance(time.Hour)
	_, err = c.Token(ctx, app, nil)
	g.Expect(err).NotTo(HaveOccurred())
	advance(100 * time.Second)
	_, err = c.Token(ctx, app, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(api.Issued()).To(HaveLen(4))

	// Another app's token evicts the least recently used.
	other := githubtest.New(t)
	otherApp, err := GitHubAppFromSecret(appSecret(other), "")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.Token(ctx, otherApp, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Len()).To(Equal(1))
}

// Bad Secrets and refusals are ErrAuth (or ErrInvalid for the URL) with messages that name keys
// and never hold the key or a token.
func TestProviderRemote_GitHubAppErrors(t *testing.T) {
	api := githubtest.New(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(otherKey)})
	with := func(k, v string) map[string][]byte {
		s := appSecret(api)
		if v == "" {
			delete(s, k)
		} else {
			s[k] = []byte(v)
		}
		return s
	}
	tests := []struct {
		name   string
		url    string
		secret map[string][]byte
		kind   error
		msg    string
	}{
		{"no secret", "https://github.com/acme/app.git", nil, ErrAuth, "spec.secretRef"},
		{"ssh URL", "ssh://git@github.com/acme/app.git", appSecret(api), ErrInvalid, "http(s) URL"},
		{"no app ID", "https://github.com/acme/app.git", with(GitHubAppIDKey, ""), ErrAuth, "`githubAppID`"},
		{"app ID not a number", "https://github.com/acme/app.git", with(GitHubAppIDKey, "acme"), ErrAuth, "`githubAppID`"},
		{"no installation", "https://github.com/acme/app.git", with(GitHubAppInstallationIDKey, ""), ErrAuth, "`githubAppInstallationOwner`"},
		{"ID and owner", "https://github.com/acme/app.git", with(GitHubAppInstallationOwnerKey, "acme"), ErrAuth, "keep one"},
		{"no key", "https://github.com/acme/app.git", with(GitHubAppPrivateKeyKey, ""), ErrAuth, "no `githubAppPrivateKey`"},
		{"key not PEM", "https://github.com/acme/app.git", with(GitHubAppPrivateKeyKey, keyBody(api.PrivateKeyPEM)), ErrAuth, "not a PEM RSA private key"},
		{"base URL with credentials", "https://github.com/acme/app.git", with(GitHubAppBaseURLKey, "https://u:p@example.com"), ErrAuth, "`githubAppBaseURL`"},
		{"another key", "https://github.com/acme/app.git", with(GitHubAppPrivateKeyKey, string(otherPEM)), ErrAuth, "refused the JWT of app 4242 (401)"},
		{"unknown installation", "https://github.com/acme/app.git", with(GitHubAppInstallationIDKey, "999"), ErrAuth, "has no installation 999"},
		{"unknown owner", "https://github.com/acme/app.git", func() map[string][]byte {
			s := with(GitHubAppInstallationIDKey, "")
			s[GitHubAppInstallationOwnerKey] = []byte("nobody")
			return s
		}(), ErrAuth, `installed on no organization or user "nobody"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := ProviderRemote(context.Background(), tt.url, Source{Provider: ProviderGitHub, Secret: tt.secret})
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, tt.kind)).To(BeTrue(), "error %q is not %v", err, tt.kind)
			g.Expect(err.Error()).To(ContainSubstring(tt.msg))
			for _, s := range []string{keyBody(api.PrivateKeyPEM), keyBody(otherPEM), "ghs_"} {
				g.Expect(err.Error()).NotTo(ContainSubstring(s))
			}
		})
	}
	if len(api.Issued()) != 0 {
		t.Fatalf("tokens issued for bad Secrets: %d", len(api.Issued()))
	}
}

// The generic provider is NewRemote's; an unknown provider is invalid.
func TestProviderRemote_Generic(t *testing.T) {
	g := NewWithT(t)
	r, err := ProviderRemote(context.Background(), "https://example.com/r.git", Source{Secret: map[string][]byte{"bearerToken": []byte("t")}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Auth).To(Equal(&githttp.TokenAuth{Token: "t"}))
	_, err = ProviderRemote(context.Background(), "https://example.com/r.git", Source{Provider: "gitlab"})
	g.Expect(errors.Is(err, ErrInvalid)).To(BeTrue())
}
