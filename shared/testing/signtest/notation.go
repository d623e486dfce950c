package signtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/signer"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// NotationArtifactType is the artifact type of a Notary Project signature manifest.
const NotationArtifactType = "application/vnd.cncf.notary.signature"

// NotationTrustPolicy trusts the certificates of the trust store "ca:plumb" for every
// repository, with the strict level, for any identity.
const NotationTrustPolicy = `{"version":"1.0","trustPolicies":[{"name":"plumb","registryScopes":["*"],` +
	`"signatureVerification":{"level":"strict"},"trustStores":["ca:plumb"],"trustedIdentities":["*"]}]}`

// CodeSigning issues a code signing certificate of subject (a common name) for a new key,
// valid from notBefore to notAfter, as a Notary Project signing certificate.
func (ca *CA) CodeSigning(commonName string, notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"plumb.dev"}, Country: []string{"DE"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
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

// NotationSign signs the manifest digest of repo (host/path) with notation-go's signer (a JWS
// envelope) and pushes the signature as `notation sign` does: a manifest of artifact type
// application/vnd.cncf.notary.signature whose subject is the signed manifest, found through the
// referrers API.
func (ca *CA) NotationSign(repo, manifestDigest string, cert *x509.Certificate, key *ecdsa.PrivateKey, opts ...remote.Option) error {
	return ca.NotationSignAs(repo, manifestDigest, manifestDigest, cert, key, opts...)
}

// NotationSignAs pushes, as the signature of manifestDigest, a signature of signedDigest (the
// same for an honest signature; another one for a replayed signature).
func (ca *CA) NotationSignAs(repo, manifestDigest, signedDigest string, cert *x509.Certificate, key *ecdsa.PrivateKey, opts ...remote.Option) error {
	ref, err := name.ParseReference(repo+"@"+manifestDigest, name.Insecure)
	if err != nil {
		return err
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return err
	}
	signedRef, err := name.ParseReference(repo+"@"+signedDigest, name.Insecure)
	if err != nil {
		return err
	}
	signedDesc, err := remote.Head(signedRef, opts...)
	if err != nil {
		return err
	}
	s, err := signer.NewGenericSigner(key, []*x509.Certificate{cert, ca.Cert})
	if err != nil {
		return err
	}
	target := ocispec.Descriptor{MediaType: string(signedDesc.MediaType), Digest: digest.Digest(signedDesc.Digest.String()), Size: signedDesc.Size}
	env, _, err := s.Sign(context.Background(), target, notation.SignerSignOptions{SignatureMediaType: "application/jose+json"})
	if err != nil {
		return err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, NotationArtifactType)
	img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(env, "application/jose+json")})
	if err != nil {
		return err
	}
	img = mutate.Subject(img, v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}).(v1.Image)
	h, err := img.Digest()
	if err != nil {
		return err
	}
	sigRef, err := name.ParseReference(repo+"@"+h.String(), name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(sigRef, img, opts...)
}
