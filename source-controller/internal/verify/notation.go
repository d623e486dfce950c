package verify

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/registry"
	"github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// notationArtifactType is the artifact type of a Notary Project signature manifest.
const notationArtifactType = "application/vnd.cncf.notary.signature"

// maxManifest bounds a manifest read for verification; maxEnvelope a signature envelope.
const (
	maxManifest = 4 << 20
	maxEnvelope = 4 << 20
)

// verifyNotation verifies the Notary Project signatures of digest h (OCI referrers of
// artifact type application/vnd.cncf.notary.signature) with notation-go's verifier, the trust
// policy of the Secret and its certificates as the trust store: every named store of the
// policy holds all of them.
func verifyNotation(ctx context.Context, reg Registry, h v1.Hash, s Settings) (Result, error) {
	var doc trustpolicy.Document
	if err := json.Unmarshal(s.TrustPolicy, &doc); err != nil {
		return Result{}, fmt.Errorf("%w: trustpolicy.json of %s is not a trust policy: %v", ErrMaterial, s.KeysFrom, err)
	}
	certs, err := parseCertificates(s)
	if err != nil {
		return Result{}, err
	}
	v, err := verifier.NewWithOptions(&doc, secretTrustStore(certs), nil, verifier.VerifierOptions{})
	if err != nil {
		return Result{}, fmt.Errorf("%w: trustpolicy.json of %s: %v", ErrMaterial, s.KeysFrom, err)
	}
	ref := reg.RepositoryName() + "@" + h.String()
	_, outcomes, err := notation.Verify(ctx, v, &notationRepository{reg: reg}, notation.VerifyOptions{ArtifactReference: ref, MaxSignatureAttempts: maxSignatures})
	if err != nil {
		var retrieval notation.SignatureRetrievalFailedError
		if errors.As(err, &retrieval) && strings.Contains(retrieval.Msg, "no signature is associated") {
			return Result{}, fmt.Errorf("%w: no notation signature of %s (no referrer of artifact type %s)", ErrVerification, h, notationArtifactType)
		}
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("notation verification of %s: %w", h, ctx.Err())
		}
		return Result{}, fmt.Errorf("%w: no notation signature of %s verifies with the trust policy of %s: %s", ErrVerification, h, s.KeysFrom, oneLine(err))
	}
	if len(outcomes) == 0 {
		return Result{}, fmt.Errorf("%w: notation returned no outcome for %s", ErrVerification, h)
	}
	o := outcomes[len(outcomes)-1]
	if o.EnvelopeContent == nil || len(o.EnvelopeContent.SignerInfo.CertificateChain) == 0 {
		// The trust policy's level is skip: nothing was verified.
		return Result{Signer: "nobody: the trust policy's verification level is skip"}, nil
	}
	leaf := o.EnvelopeContent.SignerInfo.CertificateChain[0]
	return Result{Signer: fmt.Sprintf("notation certificate %q", leaf.Subject.String())}, nil
}

// oneLine joins the lines of notation's joined errors.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// parseCertificates reads the PEM (or DER) certificates of the Secret.
func parseCertificates(s Settings) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, name := range sortedKeys(s.Certificates) {
		data := s.Certificates[name]
		var certs []*x509.Certificate
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %s of %s holds a certificate that does not parse: %v", ErrMaterial, name, s.KeysFrom, err)
			}
			certs = append(certs, c)
		}
		if len(certs) == 0 {
			c, err := x509.ParseCertificate(data)
			if err != nil {
				return nil, fmt.Errorf("%w: %s of %s is not a PEM or DER certificate", ErrMaterial, name, s.KeysFrom)
			}
			certs = append(certs, c)
		}
		out = append(out, certs...)
	}
	return out, nil
}

// secretTrustStore is notation's trust store of the Secret's certificates.
type secretTrustStore []*x509.Certificate

func (t secretTrustStore) GetCertificates(_ context.Context, _ truststore.Type, _ string) ([]*x509.Certificate, error) {
	return t, nil
}

// notationRepository is notation's view of the registry, read-only, over Registry.
type notationRepository struct {
	reg Registry
}

var _ registry.Repository = (*notationRepository)(nil)

// Resolve reads the manifest of a digest reference for its descriptor.
func (r *notationRepository) Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	h, err := v1.NewHash(reference)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("reference %q is not a digest", reference)
	}
	b, err := r.reg.Fetch(ctx, h, maxManifest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var m struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %v", h, err)
	}
	return ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.Digest(h.String()), Size: int64(len(b))}, nil
}

// ListSignatures lists the signature manifests referring to desc.
func (r *notationRepository) ListSignatures(ctx context.Context, desc ocispec.Descriptor, fn func([]ocispec.Descriptor) error) error {
	h, err := v1.NewHash(desc.Digest.String())
	if err != nil {
		return err
	}
	refs, err := r.reg.Referrers(ctx, h, notationArtifactType)
	if err != nil {
		return err
	}
	out := make([]ocispec.Descriptor, 0, len(refs))
	for _, d := range refs {
		out = append(out, ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size, ArtifactType: d.ArtifactType, Annotations: d.Annotations})
	}
	if len(out) == 0 {
		return nil
	}
	return fn(out)
}

// FetchSignatureBlob reads a signature manifest and its one layer, the envelope.
func (r *notationRepository) FetchSignatureBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, ocispec.Descriptor, error) {
	h, err := v1.NewHash(desc.Digest.String())
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	b, err := r.reg.Fetch(ctx, h, maxManifest)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature manifest %s: %v", h, err)
	}
	if len(m.Layers) != 1 {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature manifest %s has %d layers, not 1", h, len(m.Layers))
	}
	l := m.Layers[0]
	if l.Size > maxEnvelope {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature envelope %s is %d bytes, over %d", l.Digest, l.Size, maxEnvelope)
	}
	lh, err := v1.NewHash(l.Digest.String())
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	blob, err := r.reg.Fetch(ctx, lh, maxEnvelope)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	if digest.FromBytes(blob) != l.Digest {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature envelope does not match its digest %s", l.Digest)
	}
	return blob, l, nil
}

// PushSignature is refused: verification only reads.
func (r *notationRepository) PushSignature(context.Context, string, []byte, ocispec.Descriptor, map[string]string) (ocispec.Descriptor, ocispec.Descriptor, error) {
	return ocispec.Descriptor{}, ocispec.Descriptor{}, errors.New("verification does not push signatures")
}
