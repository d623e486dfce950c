// Package verifytest signs OCI artifacts the way cosign does, with keys and certificates made in
// the test: a private Sigstore instance's material (a Fulcio-like CA and its trusted root), for
// the tests of signature verification.
package verifytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// SimpleSigningMediaType is the media type of cosign's signature payload layer.
const SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"

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
// annotations.
func Sign(repo, digest string, sigs []Signature, opts ...remote.Option) error {
	var layers []RawSignature
	for _, s := range sigs {
		signed := s.SignedDigest
		if signed == "" {
			signed = digest
		}
		payload := Payload(repo, signed)
		sum := sha256.Sum256(payload)
		sig, err := s.Key.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return err
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

// Push pushes the signature tag of digest with these layers.
func Push(repo, digest string, sigs []RawSignature, opts ...remote.Option) error {
	h, err := v1.NewHash(digest)
	if err != nil {
		return err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	for _, s := range sigs {
		ann := map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(s.Signature)}
		if s.Certificate != nil {
			ann["dev.sigstore.cosign/certificate"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate.Raw}))
		}
		if len(s.RekorBundle) > 0 {
			ann["dev.sigstore.cosign/bundle"] = string(s.RekorBundle)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(s.Payload, SimpleSigningMediaType), Annotations: ann})
		if err != nil {
			return err
		}
	}
	ref, err := name.ParseReference(repo+":"+h.Algorithm+"-"+h.Hex+".sig", name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(ref, img, opts...)
}

// CA is a Fulcio-like certificate authority of a private Sigstore instance.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed root CA valid for a day around now.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "plumb test fulcio", Organization: []string{"plumb.dev"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key}, nil
}

// oidIssuerV2 is Fulcio's OIDC issuer extension (a DER UTF8String).
var oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}

// Leaf issues a code signing certificate for a new key, as Fulcio does for an OIDC token of
// issuer and subject (a URI subject, as CI workflow identities are), valid from notBefore to
// notAfter.
func (ca *CA) Leaf(issuer, subject string, notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(subject)
	if err != nil {
		return nil, nil, err
	}
	iss, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(time.Now().UnixNano()),
		NotBefore:       notBefore,
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		URIs:            []*url.URL{u},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV2, Value: iss}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// TrustedRoot is a Sigstore trusted_root.json with the CA alone: no Rekor, CT or timestamp
// authority, as for a private instance without them.
func (ca *CA) TrustedRoot() ([]byte, error) {
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{&root.FulcioCertificateAuthority{
		Root: ca.Cert, ValidityPeriodStart: ca.Cert.NotBefore, URI: "https://fulcio.plumb.test",
	}}, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	return tr.MarshalJSON()
}
