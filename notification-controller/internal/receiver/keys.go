package receiver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

const (
	// discoveryTTL is how long an issuer's discovery document is used before it is read again.
	discoveryTTL = time.Hour
	// refetchEvery bounds how often an issuer's keys (or its discovery document, after a
	// failure) are fetched: tokens that name made-up keys cannot make the controller fetch at
	// their pace.
	refetchEvery = 10 * time.Second
	// maxDocument bounds a discovery document or key set.
	maxDocument = 1 << 20
	// maxIssuers bounds the issuers kept; beyond it they are all forgotten and discovered again.
	maxIssuers = 256
)

// signingAlgs are the algorithms tokens may be signed with (go-oidc's, never none or HMAC).
var signingAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

var defaultTokenClient = &http.Client{Timeout: 10 * time.Second}

func (t *Tokens) client() *http.Client {
	if t.Client == nil {
		return defaultTokenClient
	}
	return t.Client
}

// googleKeys are Google's keys, for gcr.
func (t *Tokens) googleKeys() *keySet {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.google == nil {
		u := t.GoogleJWKS
		if u == "" {
			u = GoogleJWKS
		}
		t.google = &keySet{url: u, client: t.client()}
	}
	return t.google
}

// discovered is what an issuer's discovery document said, or why it could not be read.
type discovered struct {
	mu      sync.Mutex
	keys    *keySet
	algs    []string
	err     error
	checked time.Time
}

// discover returns an issuer's keys and signing algorithms, from its discovery document
// (<issuer>/.well-known/openid-configuration, whose issuer must be the same URL).
func (t *Tokens) discover(ctx context.Context, issuer string) (*keySet, []string, error) {
	t.mu.Lock()
	if t.issuers == nil || len(t.issuers) >= maxIssuers {
		t.issuers = map[string]*discovered{}
	}
	d, ok := t.issuers[issuer]
	if !ok {
		d = &discovered{}
		t.issuers[issuer] = d
	}
	t.mu.Unlock()

	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.err == nil && d.keys != nil && time.Since(d.checked) < discoveryTTL:
		return d.keys, d.algs, nil
	case d.err != nil && time.Since(d.checked) < refetchEvery:
		return nil, nil, d.err
	}
	d.checked = time.Now()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, t.client()), issuer)
	if err != nil {
		d.err = fmt.Errorf("%w: OIDC discovery of %s: %v", ErrUnauthorized, issuer, err)
		return nil, nil, d.err
	}
	var doc struct {
		JWKS string   `json:"jwks_uri"`
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&doc); err != nil || doc.JWKS == "" {
		d.err = fmt.Errorf("%w: OIDC discovery of %s: no jwks_uri", ErrUnauthorized, issuer)
		return nil, nil, d.err
	}
	algs := slices.DeleteFunc(doc.Algs, func(a string) bool { return !slices.Contains(signingAlgs, a) })
	if len(algs) == 0 {
		algs = []string{oidc.RS256} // the discovery spec's default
	}
	// Keys already fetched stay when the document still names the same key set.
	if d.keys == nil || d.keys.url != doc.JWKS {
		d.keys = &keySet{url: doc.JWKS, client: t.client()}
	}
	d.algs, d.err = algs, nil
	return d.keys, d.algs, nil
}

// keySet is an issuer's signing keys (an oidc.KeySet), fetched from its JWKS URL on first use
// and again when a token names a key it lacks, at most every refetchEvery.
type keySet struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time
}

// VerifySignature implements oidc.KeySet: it returns the payload of a token one of the keys
// signed.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSigned(raw, algs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if payload, ok := verifyWith(jws, k.keys); ok {
		return payload, nil
	}
	if !k.fetched.IsZero() && time.Since(k.fetched) < refetchEvery {
		return nil, errNoKey
	}
	k.fetched = time.Now()
	keys, err := fetchKeys(ctx, k.client, k.url)
	if err != nil {
		return nil, err
	}
	k.keys = keys
	if payload, ok := verifyWith(jws, k.keys); ok {
		return payload, nil
	}
	return nil, errNoKey
}

// verifyWith tries the keys of the token's key id (every key when it names none).
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) ([]byte, bool) {
	kid := jws.Signatures[0].Header.KeyID
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// fetchKeys reads a JWKS document's signing keys.
func fetchKeys(ctx context.Context, c *http.Client, url string) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("keys at %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching keys from %s: %s", req.URL.Host, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocument)).Decode(&set); err != nil {
		return nil, fmt.Errorf("keys from %s: not a JSON Web Key Set", req.URL.Host)
	}
	keys := slices.DeleteFunc(set.Keys, func(k jose.JSONWebKey) bool { return k.Use == "enc" || !k.IsPublic() })
	return keys, nil
}

// decodeSegment decodes a JWT segment (base64url, padding optional).
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
