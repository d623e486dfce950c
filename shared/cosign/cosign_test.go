package cosign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestLoadPrivateKey(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sec1, _ := x509.MarshalECPrivateKey(key.Private)
	pkcs8, err := key.PrivatePEM()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := key.EncryptedPEM([]byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalECPrivateKey(p384)
	params := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"

	for _, tc := range []struct {
		name     string
		data     []byte
		password string
		wantErr  string
	}{
		{name: "openssl ecparam with parameters", data: append([]byte(params), pem.EncodeToMemory(&pem.Block{Type: ecPrivate, Bytes: sec1})...)},
		{name: "pkcs8", data: pkcs8},
		{name: "cosign.key", data: sealed, password: "s3cret"},
		{name: "cosign.key, wrong password", data: sealed, password: "guess", wantErr: "cannot decrypt ENCRYPTED SIGSTORE PRIVATE KEY (is the password right?"},
		{name: "P-384", data: pem.EncodeToMemory(&pem.Block{Type: ecPrivate, Bytes: p384DER}), wantErr: "curve P-384, not P-256"},
		{name: "public key", data: key.PublicPEM(), wantErr: "no PEM private key found"},
		{name: "garbage", data: []byte("not a key"), wantErr: "no PEM private key found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadPrivateKey(tc.data, []byte(tc.password))
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrKey with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Private.Equal(key.Private) {
				t.Fatal("loaded a different key")
			}
		})
	}
}

// TestSign pushes a signature to an in-process registry and reads it back as a verifier does:
// the payload names the digest, and the annotation's signature verifies with the public key.
func TestSign(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/app"
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(repo+":v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	key, _ := NewKey()
	if err := Sign(repo, d.String(), []Signature{{Key: key.Private}}); err != nil {
		t.Fatal(err)
	}

	sigRef, _ := name.ParseReference(repo+":"+SignatureTag(d), name.Insecure)
	sigImg, err := remote.Image(sigRef)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sigImg.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != SimpleSigningMediaType {
		t.Fatalf("layers = %+v, want one simple signing layer", m.Layers)
	}
	payload := blob(t, sigImg, m.Layers[0].Digest)
	var p struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Critical.Image.Digest != d.String() || p.Critical.Type != "cosign container image signature" {
		t.Fatalf("payload = %s", payload)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Layers[0].Annotations[SignatureAnnotation])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	if !ecdsa.VerifyASN1(&key.Private.PublicKey, sum[:], sig) {
		t.Fatal("signature does not verify with the public key")
	}
	other, _ := NewKey()
	if ecdsa.VerifyASN1(&other.Private.PublicKey, sum[:], sig) {
		t.Fatal("signature verifies with another key")
	}
}

func blob(t *testing.T, img v1.Image, d v1.Hash) []byte {
	t.Helper()
	l, err := img.LayerByDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzLoadPrivateKey(f *testing.F) {
	key, _ := NewKey()
	p, _ := key.PrivatePEM()
	f.Add(p, []byte(""))
	f.Add([]byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"), []byte("x"))
	f.Fuzz(func(t *testing.T, data, password []byte) {
		k, err := LoadPrivateKey(data, password)
		if err == nil && k.Private.Curve != elliptic.P256() {
			t.Fatal("accepted a key not on P-256")
		}
	})
}
