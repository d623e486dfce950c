package sopstest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// SealBox is the key a loopback key service seals data keys with: AES-GCM, so that only the
// server opens what it sealed.
type SealBox struct{ aead cipher.AEAD }

// NewSealBox makes a SealBox of a random key.
func NewSealBox(t testing.TB) SealBox {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return SealBox{a}
}

// Seal seals plain.
func (s SealBox) Seal(plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, nil)
}

// Open opens what Seal sealed.
func (s SealBox) Open(c []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(c) < n {
		return nil, errors.New("short")
	}
	return s.aead.Open(nil, c[:n], c[n:], nil)
}

// KMSAccessKeyID is the one access key KMS decrypts for; it encrypts for any.
const KMSAccessKeyID = "AKIDPLUMBTEST"

// KMSKeyARN is a key ARN of the region KMS answers for (us-east-1).
const KMSKeyARN = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"

// KMS is a loopback AWS KMS endpoint speaking the JSON 1.1 protocol (TrentService.Encrypt and
// TrentService.Decrypt) for us-east-1, recording the SigV4 Authorization headers of decrypt
// requests. The AWS SDK sends KMS requests to it when AWS_ENDPOINT_URL_KMS holds its URL.
type KMS struct {
	*httptest.Server
	box  SealBox
	mu   sync.Mutex
	auth []string
}

// NewKMS starts a KMS, closed when the test ends.
func NewKMS(t testing.TB) *KMS {
	k := &KMS{box: NewSealBox(t)}
	k.Server = httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(k.Close)
	return k
}

func (k *KMS) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	var in struct {
		KeyId          string
		Plaintext      []byte
		CiphertextBlob []byte
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-amz-json-1.1" || json.NewDecoder(r.Body).Decode(&in) != nil {
		kmsError(w, "ValidationException", "bad request")
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=") || !strings.Contains(auth, "/us-east-1/kms/aws4_request") {
		kmsError(w, "MissingAuthenticationTokenException", "not signed")
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch target {
	case "TrentService.Encrypt":
		_ = json.NewEncoder(w).Encode(map[string]any{"KeyId": in.KeyId, "CiphertextBlob": k.box.Seal(append([]byte(in.KeyId+"|"), in.Plaintext...))})
	case "TrentService.Decrypt":
		k.mu.Lock()
		k.auth = append(k.auth, auth)
		k.mu.Unlock()
		if !strings.Contains(auth, "Credential="+KMSAccessKeyID+"/") {
			kmsError(w, "AccessDeniedException", "The security token included in the request is invalid")
			return
		}
		plain, err := k.box.Open(in.CiphertextBlob)
		keyID, data, ok := strings.Cut(string(plain), "|")
		if err != nil || !ok || keyID != in.KeyId {
			kmsError(w, "InvalidCiphertextException", "")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"KeyId": in.KeyId, "Plaintext": []byte(data)})
	default:
		kmsError(w, "UnknownOperationException", target)
	}
}

func kmsError(w http.ResponseWriter, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// Headers are the Authorization headers of the decrypt requests so far.
func (k *KMS) Headers() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.auth...)
}

// GCPKeyID is the Cloud KMS key GCPKMS holds.
const GCPKeyID = "projects/plumb-test/locations/global/keyRings/ring/cryptoKeys/sops"

// GCPKMS is Cloud KMS's REST API on loopback (POST /v1/<key>:encrypt and :decrypt) for the key
// GCPKeyID, as SOPS's REST client reaches it with SOPS_GCP_KMS_ENDPOINT (and
// SOPS_GCP_KMS_CLIENT_TYPE=rest); it answers only the bearer token it is given, and records the
// Authorization headers of decrypt requests.
type GCPKMS struct {
	*httptest.Server
	token string
	box   SealBox
	mu    sync.Mutex
	seen  []string
}

// NewGCPKMS starts a GCPKMS that accepts token, closed when the test ends.
func NewGCPKMS(t testing.TB, token string) *GCPKMS {
	k := &GCPKMS{token: token, box: NewSealBox(t)}
	k.Server = httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(k.Close)
	return k
}

func (k *GCPKMS) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	if strings.HasSuffix(path, ":decrypt") {
		k.mu.Lock()
		k.seen = append(k.seen, r.Header.Get("Authorization"))
		k.mu.Unlock()
	}
	fail := func(code int, status, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
	}
	if r.Header.Get("Authorization") != "Bearer "+k.token {
		fail(http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
		return
	}
	var body struct{ Plaintext, Ciphertext []byte } // base64 in JSON
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "bad request")
		return
	}
	var out map[string]any
	switch path {
	case GCPKeyID + ":encrypt":
		out = map[string]any{"name": GCPKeyID + "/cryptoKeyVersions/1", "ciphertext": k.box.Seal(body.Plaintext)}
	case GCPKeyID + ":decrypt":
		plain, err := k.box.Open(body.Ciphertext)
		if err != nil {
			fail(http.StatusBadRequest, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid.")
			return
		}
		out = map[string]any{"plaintext": plain}
	default:
		fail(http.StatusNotFound, "NOT_FOUND", "CryptoKey "+path+" not found.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Authorizations are the Authorization headers of the decrypt requests so far.
func (k *GCPKMS) Authorizations() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.seen...)
}
