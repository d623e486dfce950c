// Package verify checks the signature of an OCI artifact's manifest digest before the artifact is
// published: cosign signatures (with public keys, or keyless with a certificate identity against
// a Sigstore trusted root) through sigstore-go, and Notary Project signatures through
// notation-go. It is free of controller-runtime: the controller reads the Secrets and hands over
// their contents as a Settings.
package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Errors, to be told apart with errors.Is.
var (
	// ErrVerification: no signature of the digest verifies with the trusted material (none
	// found, another key or identity, an expired certificate, a signature of another digest).
	ErrVerification = errors.New("verification failed")
	// ErrInvalid: the verification settings cannot work (a regular expression that does not
	// compile, an unknown provider); retrying cannot help until the spec changes.
	ErrInvalid = errors.New("invalid verification settings")
	// ErrMaterial: the trusted material is missing or unusable (a Secret without keys, a
	// trusted root or trust policy that does not parse); retried, so a fixed Secret is
	// picked up.
	ErrMaterial = errors.New("trusted material")
)

// Providers.
const (
	ProviderCosign   = "cosign"
	ProviderNotation = "notation"
)

// Identity is a certificate identity accepted by keyless verification: regular expressions of
// the OIDC issuer and the subject.
type Identity struct {
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
}

// Settings are what a signature is verified with: the spec's settings and the contents of the
// Secrets it names.
type Settings struct {
	Provider string `json:"provider"`
	// Keys are the cosign public keys (PEM) by their Secret key name, e.g. cosign.pub.
	Keys map[string][]byte `json:"keys,omitempty"`
	// KeysFrom names the Secret the keys came from, for messages.
	KeysFrom string `json:"keysFrom,omitempty"`
	// Identities accepted by cosign keyless verification.
	Identities []Identity `json:"identities,omitempty"`
	// TrustedRoot is a Sigstore trusted_root.json; empty: the public-good instance's.
	TrustedRoot []byte `json:"trustedRoot,omitempty"`
	// TrustPolicy is notation's trustpolicy.json.
	TrustPolicy []byte `json:"trustPolicy,omitempty"`
	// Certificates are notation's trusted certificates (PEM or DER) by their Secret key name.
	Certificates map[string][]byte `json:"certificates,omitempty"`
}

// Digest identifies the settings for the cache: equal settings, equal digest.
func (s Settings) Digest() string {
	b, _ := json.Marshal(s) // maps marshal with sorted keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Result says who signed a verified digest.
type Result struct {
	// Signer is the identity that signed: a key's name and fingerprint, a certificate's issuer
	// and subject, or a notation certificate's subject.
	Signer string
}

// Registry is what verification reads of the artifact's repository.
type Registry interface {
	// RepositoryName is the repository's host/path, as references name it.
	RepositoryName() string
	// Image returns the image (a manifest and its layers) that tag names in the artifact's
	// repository; a tag that does not exist is an error matching IsNotFound.
	Image(ctx context.Context, tag string) (v1.Image, error)
	// Referrers lists the manifests that refer to digest, of artifactType when not empty.
	Referrers(ctx context.Context, digest v1.Hash, artifactType string) ([]v1.Descriptor, error)
	// Fetch returns the blob or manifest of digest, at most limit bytes.
	Fetch(ctx context.Context, digest v1.Hash, limit int64) ([]byte, error)
}

// Verify checks that a signature of digest (sha256:...) in reg verifies with s.
func Verify(ctx context.Context, reg Registry, digest string, s Settings, isNotFound func(error) bool) (Result, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return Result{}, fmt.Errorf("%w: digest %q: %v", ErrInvalid, digest, err)
	}
	switch s.Provider {
	case "", ProviderCosign:
		return verifyCosign(ctx, reg, h, s, isNotFound)
	case ProviderNotation:
		return verifyNotation(ctx, reg, h, s)
	default:
		return Result{}, fmt.Errorf("%w: provider %q is neither cosign nor notation", ErrInvalid, s.Provider)
	}
}

// CheckIdentities compiles the identities' regular expressions, so that a bad one is reported
// before any registry request.
func CheckIdentities(ids []Identity) error {
	for i, id := range ids {
		if _, err := regexp.Compile(id.Issuer); err != nil {
			return fmt.Errorf("%w: matchOIDCIdentity[%d].issuer %q is not a regular expression: %v", ErrInvalid, i, id.Issuer, err)
		}
		if _, err := regexp.Compile(id.Subject); err != nil {
			return fmt.Errorf("%w: matchOIDCIdentity[%d].subject %q is not a regular expression: %v", ErrInvalid, i, id.Subject, err)
		}
	}
	return nil
}

// Cache remembers verified digests by (repository, digest, settings digest), so that a
// reconcile of an unchanged artifact with unchanged settings verifies nothing and asks the
// registry for no signature. It also remembers when a digest was last verified with settings
// read from their Secrets (Recent), so that the reconciles in between need not read the Secrets
// again. It holds at most n entries of each and is safe for concurrent use.
type Cache struct {
	mu     sync.Mutex
	max    int
	m      map[string]Result
	recent map[string]recent
}

type recent struct {
	r  Result
	at time.Time
}

// NewCache returns a cache of at most n entries (at least 1).
func NewCache(n int) *Cache {
	return &Cache{max: max(n, 1), m: map[string]Result{}, recent: map[string]recent{}}
}

func cacheKey(repo, digest, settings string) string {
	return repo + "@" + digest + "#" + settings
}

// Get returns the result of an earlier verification.
func (c *Cache) Get(repo, digest, settings string) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[cacheKey(repo, digest, settings)]
	return r, ok
}

// Put remembers a verification; when full, the cache starts over (verified digests are cheap
// to verify again, and a bounded map cannot grow with the registry's history).
func (c *Cache) Put(repo, digest, settings string, r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[cacheKey(repo, digest, settings)] = r
}

// Recent returns the result of a verification of digest with the spec whose digest is spec (the
// names of its Secrets, not their content), made with Secrets read no longer ago than within.
func (c *Cache) Recent(repo, digest, spec string, within time.Duration, now time.Time) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.recent[cacheKey(repo, digest, spec)]
	if !ok || now.Sub(e.at) > within || now.Before(e.at) {
		return Result{}, false
	}
	return e.r, true
}

// Remember records that digest passed verification with spec's Secrets as read at now.
func (c *Cache) Remember(repo, digest, spec string, r Result, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.recent) >= c.max {
		clear(c.recent)
	}
	c.recent[cacheKey(repo, digest, spec)] = recent{r: r, at: now}
}

// Forget drops what Remember recorded of digest and spec.
func (c *Cache) Forget(repo, digest, spec string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.recent, cacheKey(repo, digest, spec))
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
