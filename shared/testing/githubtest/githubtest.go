// Package githubtest is a loopback GitHub API for one GitHub App: it issues installation access
// tokens (POST /app/installations/{id}/access_tokens), finds installations by owner (GET
// /orgs/{owner}/installation, /users/{owner}/installation) and records commit statuses (POST
// /repos/{owner}/{repo}/statuses/{sha}). Every app request must carry a JWT signed (RS256) with
// the app's private key, issued by the app's ID, with sane iat and exp, as GitHub checks it.
package githubtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Status is a commit status the server received, with the token it was sent with.
type Status struct {
	Repo, SHA, State, Context, Description string
	// Authorization is the request's Authorization header.
	Authorization string
}

// Server is the loopback API of one app with one installation.
type Server struct {
	// URL is the API's base URL, http://127.0.0.1:port.
	URL string
	// AppID, InstallationID and Owner (the account the app is installed on) of the app.
	AppID          int64
	InstallationID int64
	Owner          string
	// PrivateKeyPEM is the app's private key (PKCS#1 PEM), as GitHub hands it out.
	PrivateKeyPEM []byte
	// CAPEM is the server's certificate (PEM) when it serves HTTPS.
	CAPEM []byte

	key *rsa.PrivateKey

	mu        sync.Mutex
	ttl       time.Duration
	issued    []string
	lookups   int
	refused   []string
	statuses  []Status
	tokenBase string
}

// New starts the API over plain HTTP for the test with a new 2048-bit app key; tokens live
// one hour, as GitHub's do.
func New(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// NewTLS is New over HTTPS; CAPEM is the certificate to trust.
func NewTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		AppID:          4242,
		InstallationID: 777,
		Owner:          "acme",
		key:            key,
		PrivateKeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		ttl:            time.Hour,
		tokenBase:      "ghs_test",
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if useTLS {
		srv.StartTLS()
		s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// SetTokenTTL sets the lifetime of the tokens issued from now on.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

// Token is the n-th token (from 1) the server issues: tokens are predictable so that a Git
// server can be told which one to accept.
func (s *Server) Token(n int) string {
	return fmt.Sprintf("%s_%d_%d", s.tokenBase, s.AppID, n)
}

// Issued returns the tokens issued so far.
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// Lookups counts the installation lookups by owner.
func (s *Server) Lookups() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups
}

// Refused returns why requests were refused (a bad JWT, say).
func (s *Server) Refused() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.refused...)
}

// Statuses returns the commit statuses received.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && len(parts) == 4 && parts[0] == "app" && parts[1] == "installations" && parts[3] == "access_tokens":
		if !s.appAuthorized(w, r) {
			return
		}
		id, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || id != s.InstallationID {
			notFound(w)
			return
		}
		s.issue(w)
	case r.Method == http.MethodGet && len(parts) == 3 && (parts[0] == "orgs" || parts[0] == "users") && parts[2] == "installation":
		if !s.appAuthorized(w, r) {
			return
		}
		s.mu.Lock()
		s.lookups++
		s.mu.Unlock()
		if parts[1] != s.Owner || parts[0] != "orgs" {
			notFound(w)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": s.InstallationID, "app_id": s.AppID, "account": map[string]any{"login": s.Owner}})
	case r.Method == http.MethodPost && len(parts) == 5 && parts[0] == "repos" && parts[3] == "statuses":
		var body struct{ State, Context, Description string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.statuses = append(s.statuses, Status{Repo: parts[1] + "/" + parts[2], SHA: parts[4], State: body.State,
			Context: body.Context, Description: body.Description, Authorization: r.Header.Get("Authorization")})
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"state": body.State})
	default:
		notFound(w)
	}
}

func (s *Server) issue(w http.ResponseWriter) {
	s.mu.Lock()
	tok := s.Token(len(s.issued) + 1)
	s.issued = append(s.issued, tok)
	exp := time.Now().Add(s.ttl).UTC().Truncate(time.Second)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339),
		"permissions": map[string]string{"contents": "write"}, "repository_selection": "all"})
}

// appAuthorized checks the app's JWT as GitHub does, answering 401 when it fails.
func (s *Server) appAuthorized(w http.ResponseWriter, r *http.Request) bool {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return s.refuse(w, "no bearer JWT")
	}
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &s.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(strconv.FormatInt(s.AppID, 10)),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired(), jwt.WithLeeway(time.Minute))
	if err != nil {
		return s.refuse(w, "JWT: "+err.Error())
	}
	// GitHub refuses a JWT valid for more than ten minutes.
	if claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute {
		return s.refuse(w, "JWT lives longer than 10 minutes")
	}
	return true
}

func (s *Server) refuse(w http.ResponseWriter, why string) bool {
	s.mu.Lock()
	s.refused = append(s.refused, why)
	s.mu.Unlock()
	writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "A JSON web token could not be decoded"})
	return false
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
