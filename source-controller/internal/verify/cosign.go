package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/tuf"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Where cosign keeps a signature in the manifest of its .sig tag: one layer per signature, the
// simple signing payload as the blob, the rest as annotations of the layer.
const (
	cosignSignatureAnnotation   = "dev.cosignproject.cosign/signature"
	cosignCertificateAnnotation = "dev.sigstore.cosign/certificate"
	cosignBundleAnnotation      = "dev.sigstore.cosign/bundle"
	// cosignPayloadType is the type of the simple signing payload cosign signs.
	cosignPayloadType = "cosign container image signature"

	// maxPayload bounds a signature's payload; cosign's are a few hundred bytes.
	maxPayload = 64 << 10
	// maxSignatures bounds the signatures looked at for one digest.
	maxSignatures = 32
)

// SignatureTag is the tag under which cosign keeps the signatures of digest h.
func SignatureTag(h v1.Hash) string {
	return h.Algorithm + "-" + h.Hex + ".sig"
}

// cosignSignature is one signature of a .sig manifest.
type cosignSignature struct {
	payload []byte
	sig     []byte
	// digest is the manifest digest that the payload says is signed.
	digest string
	cert   *x509.Certificate
	rekor  *rekorBundle
}

// simpleSigning is the part of cosign's simple signing payload that verification reads.
type simpleSigning struct {
	Critical struct {
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

// rekorBundle is cosign's dev.sigstore.cosign/bundle annotation: a Rekor v1 entry with its
// signed entry timestamp.
type rekorBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"`
	} `json:"Payload"`
}

// parseCosignSignature reads one layer of a .sig manifest: its annotations and its payload.
func parseCosignSignature(ann map[string]string, payload []byte) (cosignSignature, error) {
	s := cosignSignature{payload: payload}
	b64, ok := ann[cosignSignatureAnnotation]
	if !ok {
		return s, fmt.Errorf("the layer has no %s annotation", cosignSignatureAnnotation)
	}
	var err error
	if s.sig, err = base64.StdEncoding.DecodeString(b64); err != nil || len(s.sig) == 0 {
		return s, fmt.Errorf("the %s annotation is not a base64 signature", cosignSignatureAnnotation)
	}
	var p simpleSigning
	if err := json.Unmarshal(payload, &p); err != nil {
		return s, fmt.Errorf("the payload is not a simple signing JSON document: %v", err)
	}
	if p.Critical.Type != cosignPayloadType {
		return s, fmt.Errorf("the payload's type is %q, not %q", p.Critical.Type, cosignPayloadType)
	}
	if _, err := v1.NewHash(p.Critical.Image.DockerManifestDigest); err != nil {
		return s, fmt.Errorf("the payload's docker-manifest-digest %q is not a digest", p.Critical.Image.DockerManifestDigest)
	}
	s.digest = p.Critical.Image.DockerManifestDigest
	if pem := ann[cosignCertificateAnnotation]; pem != "" {
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(pem))
		if err != nil || len(certs) == 0 {
			return s, fmt.Errorf("the %s annotation is not a PEM certificate", cosignCertificateAnnotation)
		}
		s.cert = certs[0]
	}
	if js := ann[cosignBundleAnnotation]; js != "" {
		var rb rekorBundle
		if err := json.Unmarshal([]byte(js), &rb); err != nil {
			return s, fmt.Errorf("the %s annotation is not a Rekor bundle: %v", cosignBundleAnnotation, err)
		}
		s.rekor = &rb
	}
	return s, nil
}

// tlogEntry turns the Rekor bundle into sigstore-go's entry.
func (rb *rekorBundle) tlogEntry() (*tlog.Entry, error) {
	body, err := base64.StdEncoding.DecodeString(rb.Payload.Body)
	if err != nil {
		return nil, fmt.Errorf("the Rekor bundle's body is not base64")
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil {
		return nil, fmt.Errorf("the Rekor bundle's logID is not hex")
	}
	//lint:ignore SA1019 cosign's annotation holds a Rekor v1 entry, which is what NewEntry parses.
	return tlog.NewEntry(body, rb.Payload.IntegratedTime, rb.Payload.LogIndex, logID, rb.SignedEntryTimestamp, nil)
}

// cosignSignatures reads the signatures of digest h from its .sig tag.
func cosignSignatures(ctx context.Context, reg Registry, h v1.Hash, isNotFound func(error) bool) ([]cosignSignature, error) {
	tag := SignatureTag(h)
	img, err := reg.Image(ctx, tag)
	if err != nil {
		if isNotFound != nil && isNotFound(err) {
			return nil, fmt.Errorf("%w: no cosign signature of %s (the repository has no tag %s)", ErrVerification, h, tag)
		}
		return nil, fmt.Errorf("reading the signatures of %s (tag %s): %w", h, tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading the signatures of %s (tag %s): %w", h, tag, err)
	}
	var sigs []cosignSignature
	var problems []string
	for i, l := range m.Layers {
		if i == maxSignatures {
			break
		}
		if l.Size > maxPayload {
			problems = append(problems, fmt.Sprintf("layer %d: payload of %d bytes, over %d", i, l.Size, maxPayload))
			continue
		}
		payload, err := readLayer(ctx, img, l.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading signature payload %s of %s: %w", l.Digest, h, err)
		}
		s, err := parseCosignSignature(l.Annotations, payload)
		if err != nil {
			problems = append(problems, fmt.Sprintf("layer %d: %v", i, err))
			continue
		}
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 {
		msg := fmt.Sprintf("%s has no cosign signature", tag)
		if len(problems) > 0 {
			msg += ": " + strings.Join(problems, "; ")
		}
		return nil, fmt.Errorf("%w: %s", ErrVerification, msg)
	}
	return sigs, nil
}

// readLayer reads a payload blob, checked against its digest.
func readLayer(ctx context.Context, img v1.Image, d v1.Hash) ([]byte, error) {
	l, err := img.LayerByDigest(d)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxPayload+1))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); d.Algorithm != "sha256" || hex.EncodeToString(sum[:]) != d.Hex {
		return nil, fmt.Errorf("blob does not match its digest %s", d)
	}
	return b, nil
}

// cosignEntity presents a cosign signature to sigstore-go's verifier.
type cosignEntity struct {
	sgverify.BaseSignedEntity
	s     cosignSignature
	vc    sgverify.VerificationContent
	entry *tlog.Entry
}

func (e *cosignEntity) HasInclusionPromise() bool {
	return e.entry != nil && e.entry.HasInclusionPromise()
}
func (e *cosignEntity) HasInclusionProof() bool  { return false }
func (e *cosignEntity) Version() (string, error) { return "v0.3", nil }
func (e *cosignEntity) Timestamps() ([][]byte, error) {
	return nil, nil
}
func (e *cosignEntity) VerificationContent() (sgverify.VerificationContent, error) { return e.vc, nil }
func (e *cosignEntity) TlogEntries() ([]*tlog.Entry, error) {
	if e.entry == nil {
		return nil, nil
	}
	return []*tlog.Entry{e.entry}, nil
}
func (e *cosignEntity) SignatureContent() (sgverify.SignatureContent, error) {
	sum := sha256.Sum256(e.s.payload)
	return bundle.NewMessageSignature(sum[:], "SHA2_256", e.s.sig), nil
}

func verifyCosign(ctx context.Context, reg Registry, h v1.Hash, s Settings, isNotFound func(error) bool) (Result, error) {
	if err := CheckIdentities(s.Identities); err != nil {
		return Result{}, err
	}
	if len(s.Keys) > 0 {
		keys, err := parseKeys(s)
		if err != nil {
			return Result{}, err
		}
		sigs, err := cosignSignatures(ctx, reg, h, isNotFound)
		if err != nil {
			return Result{}, err
		}
		return verifyKeyed(h, sigs, keys, s.KeysFrom)
	}
	if len(s.Identities) == 0 {
		return Result{}, fmt.Errorf("%w: cosign keyless verification needs matchOIDCIdentity (or a secretRef with public keys)", ErrInvalid)
	}
	tm, err := trustedRoot(s.TrustedRoot)
	if err != nil {
		return Result{}, err
	}
	sigs, err := cosignSignatures(ctx, reg, h, isNotFound)
	if err != nil {
		return Result{}, err
	}
	return verifyKeyless(h, sigs, tm, s.Identities)
}

// publicKey is a trusted cosign key.
type publicKey struct {
	name        string
	fingerprint string
	verifier    signature.Verifier
}

// parseKeys reads the PEM public keys.
func parseKeys(s Settings) ([]publicKey, error) {
	var keys []publicKey
	for _, name := range sortedKeys(s.Keys) {
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(s.Keys[name])
		if err != nil {
			return nil, fmt.Errorf("%w: %s of %s is not a PEM public key", ErrMaterial, name, s.KeysFrom)
		}
		v, err := signature.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%w: %s of %s: %v", ErrMaterial, name, s.KeysFrom, err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("%w: %s of %s: %v", ErrMaterial, name, s.KeysFrom, err)
		}
		sum := sha256.Sum256(der)
		keys = append(keys, publicKey{name: name, fingerprint: "SHA256:" + hex.EncodeToString(sum[:]), verifier: v})
	}
	return keys, nil
}

// verifyKeyed passes when a signature verifies with any key and signs digest h. Keyed
// signatures need no transparency log entry, as in Flux.
func verifyKeyed(h v1.Hash, sigs []cosignSignature, keys []publicKey, from string) (Result, error) {
	var other []string
	for _, sig := range sigs {
		for _, k := range keys {
			tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
				return root.NewExpiringKey(k.verifier, time.Time{}, time.Time{}), nil
			})
			v, err := sgverify.NewVerifier(tm, sgverify.WithNoObserverTimestamps())
			if err != nil {
				return Result{}, fmt.Errorf("%w: %v", ErrMaterial, err)
			}
			e := &cosignEntity{s: sig, vc: &bundle.PublicKey{}}
			if _, err := v.Verify(e, sgverify.NewPolicy(sgverify.WithArtifact(bytes.NewReader(sig.payload)), sgverify.WithKey())); err != nil {
				continue
			}
			if sig.digest != h.String() {
				other = append(other, sig.digest)
				continue
			}
			return Result{Signer: fmt.Sprintf("cosign key %s (%s)", k.name, k.fingerprint)}, nil
		}
	}
	if len(other) > 0 {
		return Result{}, fmt.Errorf("%w: the signature under %s is for another digest, %s", ErrVerification, SignatureTag(h), other[0])
	}
	return Result{}, fmt.Errorf("%w: no signature of %s verifies with the public keys of %s (%s): signed by another key", ErrVerification, h, from, keyNames(keys))
}

func keyNames(keys []publicKey) string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// verifyKeyless passes when a signature's certificate chains to a CA of the trusted root, has an
// accepted identity, and its signature signs digest h. A trusted root with Rekor logs requires a
// transparency log entry (its integrated time is the time the certificate is checked at); one
// without (a private instance without Rekor) checks the certificate at the current time. A root
// with CT logs requires an embedded SCT.
func verifyKeyless(h v1.Hash, sigs []cosignSignature, tm root.TrustedMaterial, ids []Identity) (Result, error) {
	policy := []sgverify.PolicyOption{}
	for _, id := range ids {
		ci, err := sgverify.NewShortCertificateIdentity("", id.Issuer, "", id.Subject)
		if err != nil {
			return Result{}, fmt.Errorf("%w: matchOIDCIdentity: %v", ErrInvalid, err)
		}
		policy = append(policy, sgverify.WithCertificateIdentity(ci))
	}
	withTlog := len(tm.RekorLogs()) > 0
	var opts []sgverify.VerifierOption
	if withTlog {
		opts = append(opts, sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
	} else {
		opts = append(opts, sgverify.WithCurrentTime())
	}
	if len(tm.CTLogs()) > 0 {
		opts = append(opts, sgverify.WithSignedCertificateTimestamps(1))
	}
	v, err := sgverify.NewVerifier(tm, opts...)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrMaterial, err)
	}
	var problems []string
	for _, sig := range sigs {
		if sig.cert == nil {
			problems = append(problems, "a signature has no certificate (it was signed with a key: verify it with secretRef)")
			continue
		}
		e := &cosignEntity{s: sig, vc: bundle.NewCertificate(sig.cert)}
		if withTlog {
			if sig.rekor == nil {
				problems = append(problems, "a signature has no transparency log entry, which the trusted root's Rekor log requires")
				continue
			}
			if e.entry, err = sig.rekor.tlogEntry(); err != nil {
				problems = append(problems, "a signature's transparency log entry is unreadable: "+err.Error())
				continue
			}
		}
		_, err := v.Verify(e, sgverify.NewPolicy(sgverify.WithArtifact(bytes.NewReader(sig.payload)), policy...))
		if err != nil {
			problems = append(problems, keylessProblem(sig.cert, ids, withTlog, err))
			continue
		}
		if sig.digest != h.String() {
			problems = append(problems, fmt.Sprintf("the signature is for another digest, %s", sig.digest))
			continue
		}
		id := certIdentity(sig.cert)
		return Result{Signer: fmt.Sprintf("certificate of issuer %s, subject %s", id.Issuer, id.Subject)}, nil
	}
	return Result{}, fmt.Errorf("%w: no keyless signature of %s verifies: %s", ErrVerification, h, strings.Join(problems, "; "))
}

// keylessProblem says precisely why a certificate's signature did not verify: an expired
// certificate, an identity none of ids accepts, or the library's own reason.
func keylessProblem(cert *x509.Certificate, ids []Identity, withTlog bool, err error) string {
	now := time.Now()
	if !withTlog && now.After(cert.NotAfter) {
		return fmt.Sprintf("its certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if !withTlog && now.Before(cert.NotBefore) {
		return fmt.Sprintf("its certificate is valid only from %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	id := certIdentity(cert)
	if !identityMatches(id, ids) {
		return fmt.Sprintf("its certificate identity (issuer %q, subject %q) matches no matchOIDCIdentity entry", id.Issuer, id.Subject)
	}
	return fmt.Sprintf("certificate of issuer %q, subject %q: %v", id.Issuer, id.Subject, err)
}

// certIdentity reads a Fulcio certificate's OIDC issuer and subject.
func certIdentity(cert *x509.Certificate) Identity {
	sum, err := certificate.SummarizeCertificate(cert)
	if err != nil {
		return Identity{}
	}
	return Identity{Issuer: sum.Issuer, Subject: sum.SubjectAlternativeName}
}

func identityMatches(id Identity, ids []Identity) bool {
	for _, want := range ids {
		ri, err1 := regexp.Compile(want.Issuer)
		rs, err2 := regexp.Compile(want.Subject)
		if err1 == nil && err2 == nil && ri.MatchString(id.Issuer) && rs.MatchString(id.Subject) {
			return true
		}
	}
	return false
}

// publicGood is the Sigstore public-good instance's trusted root, fetched once over TUF (with the
// TUF root embedded in sigstore-go) and refreshed by the library.
var publicGood struct {
	sync.Mutex
	root *root.LiveTrustedRoot
}

// trustedRoot parses a trusted_root.json, or returns the public-good root when js is empty.
func trustedRoot(js []byte) (root.TrustedMaterial, error) {
	if len(js) > 0 {
		tr, err := root.NewTrustedRootFromJSON(js)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not a Sigstore trusted root: %v", ErrMaterial, "trusted_root.json", err)
		}
		return tr, nil
	}
	publicGood.Lock()
	defer publicGood.Unlock()
	if publicGood.root != nil {
		return publicGood.root, nil
	}
	opts := tuf.DefaultOptions()
	// The controller's file system may be read-only: keep the TUF metadata in memory.
	opts.DisableLocalCache = true
	lr, err := root.NewLiveTrustedRoot(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching the Sigstore public-good trusted root over TUF: %v; set trustedRootSecretRef to verify without it", ErrMaterial, err)
	}
	publicGood.root = lr
	return lr, nil
}
