// Package cosign signs OCI artifacts the way `cosign sign --key` does, so that cosign's verifiers
// and source-controller's keyed verification accept the signatures: the simple signing payload
// naming the manifest digest, an ECDSA P-256 signature over its SHA-256, and a `.sig` tag whose
// layers hold the payload with the signature as an annotation. It also loads the private keys
// cosign makes (its encrypted cosign.key) and plain PEM EC keys.
package cosign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where cosign keeps a signature in its .sig manifest.
const (
	// SimpleSigningMediaType is the media type of the signature payload layer.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds the base64 signature of the layer's payload.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// CertificateAnnotation holds the PEM signing certificate (keyless).
	CertificateAnnotation = "dev.sigstore.cosign/certificate"
	// BundleAnnotation holds the Rekor bundle (a transparency log entry).
	BundleAnnotation = "dev.sigstore.cosign/bundle"
)

// Key is an ECDSA P-256 signing key, as `cosign generate-key-pair` makes.
type Key struct {
	Private *ecdsa.PrivateKey
}

// NewKey makes a key.
func NewKey() (*Key, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Key{Private: k}, nil
}

// PublicPEM is the public key as cosign.pub holds it.
func (k *Key) PublicPEM() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PrivatePEM is the private key as an unencrypted PKCS #8 PEM block ("PRIVATE KEY").
func (k *Key) PrivatePEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Signature is what Sign pushes.
type Signature struct {
	// Key signs the payload.
	Key crypto.Signer
	// Certificate, when not nil, is attached as dev.sigstore.cosign/certificate (keyless).
	Certificate *x509.Certificate
	// SignedDigest is the digest the payload names; empty: the digest signed for.
	SignedDigest string
}

// Payload is cosign's simple signing payload for digest in repo.
func Payload(repo, digest string) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, repo, digest)
}

// Sign pushes to repo (host/path) the signature tag of digest, as `cosign sign` does: one layer
// per signature, the payload as the blob, the base64 signature (and the certificate) as
// annotations. It replaces any signatures already under the tag.
func Sign(repo, digest string, sigs []Signature, opts ...remote.Option) error {
	layers := make([]RawSignature, 0, len(sigs))
	for _, s := range sigs {
		signed := s.SignedDigest
		if signed == "" {
			signed = digest
		}
		payload := Payload(repo, signed)
		sum := sha256.Sum256(payload)
		sig, err := s.Key.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return fmt.Errorf("sign %s: %w", signed, err)
		}
		layers = append(layers, RawSignature{Payload: payload, Signature: sig, Certificate: s.Certificate})
	}
	return Push(repo, digest, layers, opts...)
}

// RawSignature is one layer of a signature tag, as it is.
type RawSignature struct {
	Payload, Signature []byte
	// Certificate, when not nil, is the dev.sigstore.cosign/certificate annotation.
	Certificate *x509.Certificate
	// RekorBundle, when not empty, is the dev.sigstore.cosign/bundle annotation.
	RekorBundle []byte
}

// SignatureTag is the tag under which cosign keeps the signatures of digest h.
func SignatureTag(h v1.Hash) string {
	return h.Algorithm + "-" + h.Hex + ".sig"
}

// Push pushes the signature tag of digest in repo with these layers. Registries on localhost,
// loopback or private (RFC 1918) addresses are spoken to over plain HTTP, others over HTTPS
// only, as go-containerregistry decides.
func Push(repo, digest string, sigs []RawSignature, opts ...remote.Option) error {
	h, err := v1.NewHash(digest)
	if err != nil {
		return fmt.Errorf("digest %q: %w", digest, err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	for _, s := range sigs {
		ann := map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(s.Signature)}
		if s.Certificate != nil {
			ann[CertificateAnnotation] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate.Raw}))
		}
		if len(s.RekorBundle) > 0 {
			ann[BundleAnnotation] = string(s.RekorBundle)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(s.Payload, SimpleSigningMediaType), Annotations: ann})
		if err != nil {
			return err
		}
	}
	ref, err := name.ParseReference(repo + ":" + SignatureTag(h))
	if err != nil {
		return fmt.Errorf("signature tag of %s: %w", repo, err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return fmt.Errorf("push signature %s: %w", ref, err)
	}
	return nil
}

// ErrKey is wrapped by every refusal of a private key file; its messages never hold key bytes.
var ErrKey = errors.New("unusable signing key")
