package gitauth

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Secret keys of a GitHub App, Flux's (fluxcd/pkg/auth/githubapp).
const (
	GitHubAppIDKey                = "githubAppID"
	GitHubAppInstallationIDKey    = "githubAppInstallationID"
	GitHubAppInstallationOwnerKey = "githubAppInstallationOwner"
	GitHubAppPrivateKeyKey        = "githubAppPrivateKey"
	GitHubAppBaseURLKey           = "githubAppBaseURL"

	// GitHubAccessTokenUser is the username Git sends with an installation access token.
	GitHubAccessTokenUser = "x-access-token"
	// DefaultGitHubAPI is the API of github.com.
	DefaultGitHubAPI = "https://api.github.com"
)

// GitHubApp is a GitHub App installation as a Secret describes it.
type GitHubApp struct {
	ID int64
	// InstallationID, or else InstallationOwner (an organization or user the app is installed
	// on, looked up).
	InstallationID    int64
	InstallationOwner string
	// APIURL is the API base URL, used as given: https://api.github.com, or
	// https://github.example.com/api/v3 for GitHub Enterprise Server.
	APIURL string

	key       *rsa.PrivateKey
	keyDigest string
}

// IsGitHubApp reports whether Secret data describes a GitHub App (it has githubAppID).
func IsGitHubApp(data map[string][]byte) bool {
	return len(data[GitHubAppIDKey]) > 0
}

// GitHubAppFromSecret reads the githubApp* keys. defaultAPI is the API when the Secret has no
// githubAppBaseURL (empty: api.github.com). Errors wrap ErrAuth and name keys, never values.
func GitHubAppFromSecret(data map[string][]byte, defaultAPI string) (*GitHubApp, error) {
	app := &GitHubApp{APIURL: strings.TrimSpace(string(data[GitHubAppBaseURLKey]))}
	var err error
	if app.ID, err = strconv.ParseInt(strings.TrimSpace(string(data[GitHubAppIDKey])), 10, 64); err != nil || app.ID <= 0 {
		return nil, fmt.Errorf("%w: the Secret's `%s` must be the app's numeric ID", ErrAuth, GitHubAppIDKey)
	}
	idText := strings.TrimSpace(string(data[GitHubAppInstallationIDKey]))
	app.InstallationOwner = strings.TrimSpace(string(data[GitHubAppInstallationOwnerKey]))
	switch {
	case idText != "" && app.InstallationOwner != "":
		return nil, fmt.Errorf("%w: the Secret has both `%s` and `%s`; keep one", ErrAuth, GitHubAppInstallationIDKey, GitHubAppInstallationOwnerKey)
	case idText != "":
		if app.InstallationID, err = strconv.ParseInt(idText, 10, 64); err != nil || app.InstallationID <= 0 {
			return nil, fmt.Errorf("%w: the Secret's `%s` must be the installation's numeric ID", ErrAuth, GitHubAppInstallationIDKey)
		}
	case app.InstallationOwner == "":
		return nil, fmt.Errorf("%w: the Secret needs `%s` or `%s`", ErrAuth, GitHubAppInstallationIDKey, GitHubAppInstallationOwnerKey)
	case strings.ContainsAny(app.InstallationOwner, "/?#% "):
		return nil, fmt.Errorf("%w: the Secret's `%s` must be an organization or user name", ErrAuth, GitHubAppInstallationOwnerKey)
	}
	pemKey := data[GitHubAppPrivateKeyKey]
	if len(pemKey) == 0 {
		return nil, fmt.Errorf("%w: the Secret has no `%s` (the app's PEM private key)", ErrAuth, GitHubAppPrivateKeyKey)
	}
	if app.key, err = jwt.ParseRSAPrivateKeyFromPEM(pemKey); err != nil {
		return nil, fmt.Errorf("%w: the Secret's `%s` is not a PEM RSA private key", ErrAuth, GitHubAppPrivateKeyKey)
	}
	sum := sha256.Sum256(pemKey)
	app.keyDigest = hex.EncodeToString(sum[:])
	if app.APIURL == "" {
		app.APIURL = defaultAPI
	}
	if app.APIURL == "" {
		app.APIURL = DefaultGitHubAPI
	}
	u, err := url.Parse(app.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: the Secret's `%s` must be an http(s) URL without credentials", ErrAuth, GitHubAppBaseURLKey)
	}
	app.APIURL = strings.TrimSuffix(app.APIURL, "/")
	return app, nil
}

// installation names the installation in messages.
func (a *GitHubApp) installation() string {
	if a.InstallationID != 0 {
		return "installation " + strconv.FormatInt(a.InstallationID, 10)
	}
	return "the installation on " + a.InstallationOwner
}

// cacheKey identifies the app, its installation, its API and its key: a token is shared only
// between Secrets that could each have asked for it.
func (a *GitHubApp) cacheKey() string {
	return fmt.Sprintf("%s\x00%d\x00%d\x00%s\x00%s", a.APIURL, a.ID, a.InstallationID, a.InstallationOwner, a.keyDigest)
}

// jwt is the app's short-lived token for the app API: RS256, issued by the app ID, backdated a
// minute for clock drift and valid for nine more (GitHub allows ten).
func (a *GitHubApp) jwt(now time.Time) (string, error) {
	iat := now.Truncate(time.Second).Add(-time.Minute)
	claims := jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(a.ID, 10),
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(iat.Add(9 * time.Minute)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(a.key)
}

// InstallationToken is an installation access token and when it expires.
type InstallationToken struct {
	Token     string
	ExpiresAt time.Time
}

// GitHubTokens caches installation access tokens, shared by every object of the process that
// names the same app, installation and key. A token is used until 80% of its life has passed
// (GitHub's live an hour: 48 minutes), as kubelet rotates ServiceAccount tokens and Flux's token
// cache does; concurrent callers of one installation wait for one request. At most max entries
// are kept; the least recently used goes first.
type GitHubTokens struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*tokenEntry
}

type tokenEntry struct {
	mu       sync.Mutex // held while the token is fetched
	tok      InstallationToken
	renewAt  time.Time
	lastUsed time.Time
}

// NewGitHubTokens returns a cache of at most max tokens.
func NewGitHubTokens(max int) *GitHubTokens {
	return &GitHubTokens{max: max, now: time.Now, entries: map[string]*tokenEntry{}}
}

// DefaultGitHubTokens is the process's cache.
var DefaultGitHubTokens = NewGitHubTokens(1000)

// Token returns a usable installation token of app, asking the API with hc (nil:
// http.DefaultClient) when the cache has none.
func (c *GitHubTokens) Token(ctx context.Context, app *GitHubApp, hc *http.Client) (InstallationToken, error) {
	e := c.entry(app.cacheKey())
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tok.Token != "" && c.now().Before(e.renewAt) {
		return e.tok, nil
	}
	fetched := c.now()
	tok, err := fetchInstallationToken(ctx, app, hc)
	if err != nil {
		return tok, err
	}
	e.tok = tok
	e.renewAt = fetched.Add(tok.ExpiresAt.Sub(fetched) * 8 / 10)
	return tok, nil
}

// Len is the number of cached entries.
func (c *GitHubTokens) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *GitHubTokens) entry(key string) *tokenEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	e, ok := c.entries[key]
	if !ok {
		if len(c.entries) >= c.max {
			c.evict()
		}
		e = &tokenEntry{}
		c.entries[key] = e
	}
	e.lastUsed = now
	return e
}

// evict drops the least recently used entry; one being fetched keeps working for its callers.
func (c *GitHubTokens) evict() {
	var oldest string
	var at time.Time
	for k, e := range c.entries {
		if oldest == "" || e.lastUsed.Before(at) {
			oldest, at = k, e.lastUsed
		}
	}
	delete(c.entries, oldest)
}

// fetchInstallationToken asks the API for a new installation token, looking the installation
// up by owner first when the Secret named no ID.
func fetchInstallationToken(ctx context.Context, app *GitHubApp, hc *http.Client) (InstallationToken, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	signed, err := app.jwt(time.Now())
	if err != nil {
		return InstallationToken{}, fmt.Errorf("%w: signing the GitHub App JWT: %v", ErrAuth, err)
	}
	id := app.InstallationID
	if id == 0 {
		if id, err = lookupInstallation(ctx, app, hc, signed); err != nil {
			return InstallationToken{}, err
		}
	}
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	endpoint := fmt.Sprintf("%s/app/installations/%d/access_tokens", app.APIURL, id)
	code, err := callAPI(ctx, hc, http.MethodPost, endpoint, signed, &out)
	switch {
	case err != nil:
		return InstallationToken{}, err
	case code == http.StatusNotFound:
		return InstallationToken{}, fmt.Errorf("%w: GitHub App %d has no installation %d at %s (404): check `%s` and that the app is installed", ErrAuth, app.ID, id, apiHost(app), GitHubAppInstallationIDKey)
	case code == http.StatusUnauthorized:
		return InstallationToken{}, refusedJWT(app)
	case code != http.StatusCreated && code != http.StatusOK:
		return InstallationToken{}, fmt.Errorf("creating a token of GitHub App %d %s at %s: answered %d %s", app.ID, app.installation(), apiHost(app), code, http.StatusText(code))
	case out.Token == "":
		return InstallationToken{}, fmt.Errorf("creating a token of GitHub App %d %s at %s: the answer holds no token", app.ID, app.installation(), apiHost(app))
	}
	if out.ExpiresAt.IsZero() {
		out.ExpiresAt = time.Now().Add(time.Hour)
	}
	return InstallationToken{Token: out.Token, ExpiresAt: out.ExpiresAt}, nil
}

// lookupInstallation finds the app's installation on an organization, else on a user.
func lookupInstallation(ctx context.Context, app *GitHubApp, hc *http.Client, signed string) (int64, error) {
	for _, kind := range []string{"orgs", "users"} {
		var out struct {
			ID int64 `json:"id"`
		}
		code, err := callAPI(ctx, hc, http.MethodGet, fmt.Sprintf("%s/%s/%s/installation", app.APIURL, kind, url.PathEscape(app.InstallationOwner)), signed, &out)
		switch {
		case err != nil:
			return 0, err
		case code == http.StatusUnauthorized:
			return 0, refusedJWT(app)
		case code == http.StatusOK && out.ID > 0:
			return out.ID, nil
		case code != http.StatusNotFound:
			return 0, fmt.Errorf("finding the installation of GitHub App %d on %s at %s: answered %d %s", app.ID, app.InstallationOwner, apiHost(app), code, http.StatusText(code))
		}
	}
	return 0, fmt.Errorf("%w: GitHub App %d is installed on no organization or user %q at %s (404): check `%s`", ErrAuth, app.ID, app.InstallationOwner, apiHost(app), GitHubAppInstallationOwnerKey)
}

func refusedJWT(app *GitHubApp) error {
	return fmt.Errorf("%w: GitHub at %s refused the JWT of app %d (401): check `%s` and that `%s` is this app's current key", ErrAuth, apiHost(app), app.ID, GitHubAppIDKey, GitHubAppPrivateKeyKey)
}

func apiHost(app *GitHubApp) string {
	if u, err := url.Parse(app.APIURL); err == nil {
		return u.Host
	}
	return "the API"
}

// callAPI makes one app API request and decodes a 2xx JSON answer into out; it returns the
// status code. Errors name the host only.
func callAPI(ctx context.Context, hc *http.Client, method, endpoint, signed string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, endpoint, nil)
	if err != nil {
		return 0, fmt.Errorf("GitHub API request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+signed)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "plumb")
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s %s: %w", ue.Op, req.URL.Host, ue.Err)
		}
		return 0, fmt.Errorf("GitHub App token: %w", err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 1<<20)
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, body)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("GitHub API at %s: the answer is not JSON: %v", req.URL.Host, err)
	}
	return resp.StatusCode, nil
}
