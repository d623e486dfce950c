package sopstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

// The key every KeyVault holds, and the tenant its challenge names.
const (
	keyVaultKeyName    = "sops"
	keyVaultKeyVersion = "0123456789abcdef0123456789abcdef"
	keyVaultTenant     = "00000000-0000-0000-0000-0000000000a2"
)

// KeyVault is Azure Key Vault's REST API on loopback for one key, as SOPS's azkv calls it
// (POST <vault>/keys/<name>/<version>/encrypt and /decrypt, RSA-OAEP-256, values base64url).
// It answers only the bearer token it is given: a request with none or another one gets Key
// Vault's challenge, a 401 naming the resource to ask a token for. It records the
// Authorization headers of decrypt requests.
//
// Key Vault is https only, and azkeys accepts a challenge only if its resource is a parent
// domain of the vault's host (vault.azure.net for <name>.vault.azure.net). So the vault is
// named plumb.vault.localhost:<port>, its resource is https://vault.localhost:<port>, and it is
// reached through KeyVaultClient, which trusts its certificate and dials .localhost names on
// loopback (Go's resolver would ask DNS).
type KeyVault struct {
	srv *httptest.Server
	// URL is the vault's: https://plumb.vault.localhost:<port>.
	URL string
	// Key is the URL of its key as SOPS names Key Vault keys, <URL>/keys/<name>/<version>: a
	// group member for Encrypt.
	Key string
	// Scope is what a client asks Entra ID for after the challenge: the resource + "/.default".
	Scope    string
	host     string
	resource string
	token    string
	box      SealBox
	mu       sync.Mutex
	seen     []string
}

// NewKeyVault starts a KeyVault that accepts token, closed when the test ends.
func NewKeyVault(t testing.TB, token string) *KeyVault {
	t.Helper()
	k := &KeyVault{token: token, box: NewSealBox(t)}
	k.srv = httptest.NewUnstartedServer(http.HandlerFunc(k.serve))
	k.srv.TLS = &tls.Config{Certificates: []tls.Certificate{keyVaultShared().tls}, MinVersion: tls.VersionTLS12}
	k.srv.StartTLS()
	t.Cleanup(k.srv.Close)
	_, port, err := net.SplitHostPort(k.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	k.host = "plumb.vault.localhost:" + port
	k.resource = "https://vault.localhost:" + port
	k.URL = "https://" + k.host
	k.Key = k.URL + "/keys/" + keyVaultKeyName + "/" + keyVaultKeyVersion
	k.Scope = k.resource + "/.default"
	return k
}

func (k *KeyVault) serve(w http.ResponseWriter, r *http.Request) {
	op, known := strings.CutPrefix(r.URL.Path, "/keys/"+keyVaultKeyName+"/"+keyVaultKeyVersion+"/")
	auth := r.Header.Get("Authorization")
	if op == "decrypt" && auth != "" {
		k.mu.Lock()
		k.seen = append(k.seen, auth)
		k.mu.Unlock()
	}
	fail := func(code int, status, msg string) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": status, "message": msg}})
	}
	if auth != "Bearer "+k.token {
		// azkeys sends its first request without a token (and without its body) to learn from
		// this header which tenant and resource to ask a token for.
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.localhost/`+keyVaultTenant+`", resource="`+k.resource+`"`)
		fail(http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	// The vault's name, not the listener's address: the challenge was verified against it.
	if r.Host != k.host {
		fail(http.StatusBadRequest, "BadParameter", "unknown vault "+r.Host)
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		fail(http.StatusBadRequest, "BadParameter", "The api-version parameter is missing.")
		return
	}
	if r.Method != http.MethodPost || !known || (op != "encrypt" && op != "decrypt") {
		fail(http.StatusNotFound, "KeyNotFound", "A key with (name/id) "+r.URL.Path+" was not found in this key vault.")
		return
	}
	var in struct{ Alg, Value string }
	if json.NewDecoder(r.Body).Decode(&in) != nil || in.Alg != "RSA-OAEP-256" {
		fail(http.StatusBadRequest, "BadParameter", "The request body is not RSA-OAEP-256 key operation parameters.")
		return
	}
	value, err := base64.RawURLEncoding.DecodeString(in.Value)
	if err != nil {
		fail(http.StatusBadRequest, "BadParameter", "value is not base64url.")
		return
	}
	var result []byte
	if op == "encrypt" {
		result = k.box.Seal(value)
	} else if result, err = k.box.Open(value); err != nil {
		fail(http.StatusBadRequest, "BadParameter", "Error occurred while decrypting the ciphertext.")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]string{"kid": k.Key, "value": base64.RawURLEncoding.EncodeToString(result)})
}

// Authorizations are the Authorization headers of the decrypt requests that had one so far (the
// challenge's request has none).
func (k *KeyVault) Authorizations() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.seen...)
}

// KeyVaultClient is an HTTP client for KeyVaults: it trusts their certificate and dials names
// under .localhost (RFC 6761) on 127.0.0.1; other names as usual, without a proxy.
func KeyVaultClient() *http.Client {
	return &http.Client{Transport: keyVaultShared().transport}
}

// KeyVaultCredential is a credential that always gives token.
func KeyVaultCredential(token string) azcore.TokenCredential {
	return staticCredential(token)
}

type staticCredential string

func (s staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// keyVaultTLS is the one self-signed certificate of all KeyVaults of the process, for
// *.vault.localhost, so that a client made before a KeyVault (a controller's) trusts it, and the
// transport of KeyVaultClient.
type keyVaultTLS struct {
	tls       tls.Certificate
	transport *http.Transport
}

var keyVaultShared = sync.OnceValue(func() keyVaultTLS {
	der, key, err := nettest.NewSelfSigned("*.vault.localhost")
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	var d net.Dialer
	return keyVaultTLS{
		tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
		transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".localhost") {
					addr = net.JoinHostPort("127.0.0.1", port)
				}
				return d.DialContext(ctx, network, addr)
			},
		},
	}
})
