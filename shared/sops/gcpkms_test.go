package sops_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/plumb-dev/plumb/shared/sops"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

const gcpKey = sopstest.GCPKeyID

// googleOAuth is a loopback OAuth 2.0 token endpoint of Google's JWT bearer grant: it checks
// that the assertion is signed by the service account's key, is addressed to it, and asks for
// Cloud KMS, then issues an access token.
type googleOAuth struct {
	*httptest.Server
	public *rsa.PublicKey
	email  string
	token  string
	mu     sync.Mutex
	issued int
}

func (o *googleOAuth) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	if err := o.check(r.Form.Get("assertion")); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": err.Error()})
		return
	}
	o.mu.Lock()
	o.issued++
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": o.token, "token_type": "Bearer", "expires_in": 3600})
}

func (o *googleOAuth) issuedTokens() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.issued
}

func (o *googleOAuth) check(assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(o.public, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("invalid JWT signature")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var c struct{ Iss, Scope, Aud string }
	if err := json.Unmarshal(payload, &c); err != nil {
		return err
	}
	if c.Iss != o.email || c.Aud != o.URL+"/token" || !strings.Contains(c.Scope, "https://www.googleapis.com/auth/cloudkms") {
		return errors.New("claims: iss, aud or scope wrong")
	}
	return nil
}

// serviceAccountKey makes the RSA key of a service account: its public half and the PEM of its
// private half.
func serviceAccountKey(t *testing.T) (*rsa.PublicKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return &key.PublicKey, pemKey
}

// A GCP KMS key is opened with the service account key of the Secret's sops.gcp-kms: the JWT
// it signs is exchanged at the key's token_uri, and Cloud KMS receives that access token;
// another service account's token is refused and the message holds no key.
func TestGCPKMS(t *testing.T) {
	const email = "sops@plumb-test.iam.gserviceaccount.com"
	public, pemKey := serviceAccountKey(t)
	o := &googleOAuth{public: public, email: email, token: "ya29.kms-access-token"}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.Close)
	k := sopstest.NewGCPKMS(t, o.token)
	t.Setenv("SOPS_GCP_KMS_ENDPOINT", k.URL)
	t.Setenv("SOPS_GCP_KMS_CLIENT_TYPE", "rest")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "") // the Secret's key, never the machine's
	t.Setenv("GOOGLE_CREDENTIALS", "")

	enc := sopstest.Encrypt(t, "yaml", []byte("token: tok-gcp-123\n"),
		sopstest.Options{GCP: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: o.token})}, []string{gcpKey})
	if !strings.Contains(string(enc), "resource_id: "+gcpKey) {
		t.Fatalf("want a gcp_kms key entry:\n%s", enc)
	}
	entry, err := json.Marshal(map[string]string{
		"type": "service_account", "client_email": email, "private_key": pemKey, "private_key_id": "key-1",
		"token_uri": o.URL + "/token", "project_id": "plumb-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := sops.New(map[string][]byte{sops.GCPKMSEntry: entry})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := d.Decrypt("token.yaml", enc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "token: tok-gcp-123") {
		t.Errorf("plaintext: %s", out)
	}
	if got := k.Authorizations(); len(got) != 1 || got[0] != "Bearer "+o.token {
		t.Errorf("KMS decrypt Authorization = %q, want the bearer token the token endpoint issued", got)
	}
	if o.issuedTokens() != 1 {
		t.Errorf("token endpoint issued %d tokens, want 1", o.issuedTokens())
	}

	// Another service account's key: the token endpoint refuses its JWT; the message names the
	// file and the key, and holds no private key.
	_, otherKey := serviceAccountKey(t)
	other, _ := json.Marshal(map[string]string{
		"type": "service_account", "client_email": email, "private_key": otherKey, "private_key_id": "key-2", "token_uri": o.URL + "/token",
	})
	d, err = sops.New(map[string][]byte{sops.GCPKMSEntry: other})
	if err != nil {
		t.Fatal(err)
	}
	before := len(k.Authorizations())
	_, _, err = d.Decrypt("token.yaml", enc)
	if !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "token.yaml") || !strings.Contains(err.Error(), "gcp_kms "+gcpKey) {
		t.Errorf("err = %v, want ErrNoKey naming the file and the key", err)
	}
	if err != nil && (strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), strings.Split(otherKey, "\n")[1])) {
		t.Errorf("the message holds the private key: %v", err)
	}
	if len(k.Authorizations()) != before {
		t.Error("KMS was called without a token")
	}
}
