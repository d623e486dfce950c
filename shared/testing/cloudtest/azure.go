package cloudtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// AzureIdentity is a managed-identity endpoint as the Azure SDK reaches it with
// IDENTITY_ENDPOINT and IDENTITY_HEADER (App Service's protocol, api-version 2019-08-01): it
// checks the X-IDENTITY-HEADER and issues Token for the resource asked for.
type AzureIdentity struct {
	// URL is the endpoint, for IDENTITY_ENDPOINT; Header the secret for IDENTITY_HEADER.
	URL, Header string
	// Token is the access token it issues.
	Token string

	mu        sync.Mutex
	resources []string
}

// NewAzureIdentity starts the endpoint.
func NewAzureIdentity(t testing.TB, token string) *AzureIdentity {
	a := &AzureIdentity{Header: "identity-header-secret", Token: token}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-IDENTITY-HEADER") != a.Header || r.URL.Query().Get("api-version") != "2019-08-01" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		resource := r.URL.Query().Get("resource")
		a.mu.Lock()
		a.resources = append(a.resources, resource)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"access_token": a.Token, "expires_on": fmt.Sprint(time.Now().Add(time.Hour).Unix()),
			"resource": resource, "token_type": "Bearer",
		})
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL + "/msi/token"
	return a
}

// Resources lists the resources tokens were asked for.
func (a *AzureIdentity) Resources() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.resources...)
}

// ACR is an Azure container registry's token exchange, POST /oauth2/exchange (form
// grant_type=access_token, service, access_token → a refresh token, a JWT), and its /v2/
// endpoint, which accepts that refresh token as the password of user
// 00000000-0000-0000-0000-000000000000 (and then holds no repository: 404). Serve it with TLS: the SDK calls https://<registry>.
type ACR struct {
	// AccessToken is the Entra token the exchange accepts.
	AccessToken string

	mu        sync.Mutex
	exchanges []url.Values
	refresh   []string
}

// ACRUser is the user name ACR's refresh tokens go with.
const ACRUser = "00000000-0000-0000-0000-000000000000"

// Exchanges returns the forms of the exchange requests.
func (a *ACR) Exchanges() []url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]url.Values(nil), a.exchanges...)
}

// ServeHTTP serves the exchange and /v2/.
func (a *ACR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/oauth2/exchange" && r.Method == http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.exchanges = append(a.exchanges, r.PostForm)
		if r.PostForm.Get("grant_type") != "access_token" || r.PostForm.Get("access_token") != a.AccessToken || r.PostForm.Get("service") != r.Host {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"the access token is not valid"}]}`, http.StatusUnauthorized)
			return
		}
		tok := jwt(map[string]any{"exp": time.Now().Add(3 * time.Hour).Unix(), "aud": r.Host, "n": len(a.exchanges)})
		a.refresh = append(a.refresh, tok)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"refresh_token": tok})
	case strings.HasPrefix(r.URL.Path, "/v2/"):
		user, pass, ok := r.BasicAuth()
		a.mu.Lock()
		good := ok && user == ACRUser && len(a.refresh) > 0 && pass == a.refresh[len(a.refresh)-1]
		a.mu.Unlock()
		if !good {
			w.Header().Set("WWW-Authenticate", `Basic realm="acr"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/v2/" {
			http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte("{}"))
	default:
		http.NotFound(w, r)
	}
}

// jwt is an unsigned-looking JWT with the claims (ACR's clients read exp unverified).
func jwt(claims map[string]any) string {
	enc := base64.RawURLEncoding
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	return enc.EncodeToString(head) + "." + enc.EncodeToString(body) + "." + enc.EncodeToString([]byte("signature"))
}
