package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/expr"
)

// Google signs the OIDC tokens of Pub/Sub push subscriptions (gcr) as this issuer, with the keys
// at GoogleJWKS.
const (
	GoogleIssuer = "https://accounts.google.com"
	GoogleJWKS   = "https://www.googleapis.com/oauth2/v3/certs"
)

// Spec is what a Receiver says about the calls it takes.
type Spec struct {
	Type string
	// Token is the Secret's token ("" for generic-oidc, which has no Secret).
	Token string
	// Secret is the token Secret's data: gcr reads email and audience from it.
	Secret map[string][]byte
	Events []string
	// Issuers are generic-oidc's providers (see Issuers).
	Issuers []Issuer
}

// Check authenticates a call of any receiver type, checking OIDC tokens with t's keys, and
// applies the events filter.
func (t *Tokens) Check(ctx context.Context, s Spec, c Call) (Result, error) {
	switch s.Type {
	case notifyv1.GenericOIDCReceiver:
		claims, err := t.checkOIDC(ctx, s.Issuers, c.Header)
		if err != nil {
			return Result{}, err
		}
		return Result{Claims: claims, Trigger: true}, nil
	case notifyv1.GCRReceiver:
		r, err := t.checkGCR(ctx, s.Secret, c)
		if err != nil {
			return Result{}, err
		}
		return filter(s.Type, s.Events, r), nil
	}
	return Verify(s.Type, s.Token, s.Events, c)
}

// bearer is the token of an Authorization: Bearer header.
func bearer(h http.Header) (string, error) {
	scheme, token, ok := strings.Cut(h.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", fmt.Errorf("%w: no Authorization: Bearer token", ErrUnauthorized)
	}
	return token, nil
}

// checkGCR checks a Pub/Sub push of an Artifact Registry (or Container Registry) notification:
// the push's OIDC token is Google's, for the Secret's audience, of the Secret's service account
// (email, verified); the body is the push (wrapped, or the message data alone when the
// subscription unwraps payloads) of a notification with an action.
func (t *Tokens) checkGCR(ctx context.Context, secret map[string][]byte, c Call) (Result, error) {
	email, audience := string(secret["email"]), string(secret["audience"])
	if email == "" || audience == "" {
		return Result{}, fmt.Errorf("%w: the token Secret of a gcr Receiver needs email and audience", ErrNotReady)
	}
	raw, err := bearer(c.Header)
	if err != nil {
		return Result{}, err
	}
	claims, err := t.verify(ctx, t.googleKeys(), GoogleIssuer, audience, []string{oidc.RS256}, raw)
	if err != nil {
		return Result{}, err
	}
	if got, _ := claims["email"].(string); got != email {
		return Result{}, fmt.Errorf("%w: the token is of service account %q, not the Secret's email", ErrUnauthorized, got)
	}
	if verified, _ := claims["email_verified"].(bool); !verified {
		return Result{}, fmt.Errorf("%w: the token's email is not verified", ErrUnauthorized)
	}
	var push struct {
		Message *struct {
			// Data is base64 in the JSON: encoding/json decodes it into bytes.
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(c.Body, &push); err != nil {
		return Result{}, fmt.Errorf("%w: not a Pub/Sub push", ErrBadRequest)
	}
	data := c.Body
	if push.Message != nil {
		data = push.Message.Data
	}
	var n struct {
		Action string `json:"action"`
	}
	if err := json.Unmarshal(data, &n); err != nil || n.Action == "" {
		return Result{}, fmt.Errorf("%w: the Pub/Sub message is not an Artifact Registry notification (a JSON object with an action)", ErrBadRequest)
	}
	return Result{Event: n.Action, Payload: data}, nil
}

// checkOIDC checks a generic-oidc call: its bearer token is of one of the issuers (the one its
// iss claim names), signed with the issuer's keys, unexpired, for the issuer's audience, and
// passes the issuer's validations. It returns the token's claims.
func (t *Tokens) checkOIDC(ctx context.Context, issuers []Issuer, h http.Header) (map[string]any, error) {
	if len(issuers) == 0 {
		return nil, fmt.Errorf("%w: a generic-oidc Receiver without oidcProviders", ErrNotReady)
	}
	raw, err := bearer(h)
	if err != nil {
		return nil, err
	}
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return nil, err
	}
	var is *Issuer
	for i := range issuers {
		if issuers[i].URL == iss {
			is = &issuers[i]
			break
		}
	}
	if is == nil {
		return nil, fmt.Errorf("%w: no oidcProvider has issuer %q", ErrUnauthorized, iss)
	}
	keys, algs, err := t.discover(ctx, is.URL)
	if err != nil {
		return nil, err
	}
	claims, err := t.verify(ctx, keys, is.URL, is.Audience, algs, raw)
	if err != nil {
		return nil, err
	}
	if err := is.check(ctx, claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// verify checks a token's signature with keys, its issuer, audience and expiry, and returns its
// claims.
func (t *Tokens) verify(ctx context.Context, keys oidc.KeySet, issuer, audience string, algs []string, raw string) (map[string]any, error) {
	// The audience is checked here rather than by go-oidc, whose message would log the one
	// expected: gcr's is often the webhook's URL, path included.
	tok, err := oidc.NewVerifier(issuer, keys, &oidc.Config{SkipClientIDCheck: true, SupportedSigningAlgs: algs}).Verify(ctx, raw)
	if err != nil {
		// go-oidc's messages name what failed (signature, expiry, issuer).
		return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	if !slices.Contains(tok.Audience, audience) {
		return nil, fmt.Errorf("%w: the token is for another audience", ErrUnauthorized)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: the token's claims are not a JSON object", ErrUnauthorized)
	}
	return claims, nil
}

// unverifiedIssuer reads a JWT's iss claim without checking it, to choose the provider that
// then checks the token.
func unverifiedIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: the bearer token is not a JWT", ErrUnauthorized)
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return "", fmt.Errorf("%w: the bearer token's payload is not base64url", ErrUnauthorized)
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Iss == "" {
		return "", fmt.Errorf("%w: the bearer token has no iss claim", ErrUnauthorized)
	}
	return c.Iss, nil
}

// Issuer is a generic-oidc Receiver's oidcProvider, with its expressions compiled.
type Issuer struct {
	URL      string
	Audience string

	variables   []variable
	validations []validation
}

type variable struct {
	name string
	expr *expr.Expression
}

type validation struct {
	expr    *expr.Expression
	message string
}

// celIdentifier is what a variable's name must be to be read as vars.<name>.
var celIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Issuers compiles a Receiver's oidcProviders. Expressions that do not compile, or validations
// that do not return a bool, are errors wrapping expr.ErrCompile; other errors are specs the
// schema should have refused (on an API server that skipped its rules). Each names the field.
func Issuers(providers []notifyv1.OIDCProvider) ([]Issuer, error) {
	var out []Issuer
	seen := map[string]bool{}
	for i, p := range providers {
		at := fmt.Sprintf("spec.oidcProviders[%d]", i)
		if !strings.HasPrefix(p.IssuerURL, "https://") && !strings.HasPrefix(p.IssuerURL, "http://") {
			return nil, fmt.Errorf("%s.issuerURL %q is not an http(s) URL", at, p.IssuerURL)
		}
		if seen[p.IssuerURL] {
			return nil, fmt.Errorf("%s.issuerURL %q is another provider's too", at, p.IssuerURL)
		}
		seen[p.IssuerURL] = true
		if len(p.Validations) == 0 {
			return nil, fmt.Errorf("%s has no validations: any caller that can get a token from %s would pass", at, p.IssuerURL)
		}
		is := Issuer{URL: p.IssuerURL, Audience: p.GetAudience()}
		names := map[string]bool{}
		for j, v := range p.Variables {
			if !celIdentifier.MatchString(v.Name) || names[v.Name] {
				return nil, fmt.Errorf("%s.variables[%d].name %q is not a CEL identifier of its own", at, j, v.Name)
			}
			names[v.Name] = true
			e, err := expr.Compile(expr.OIDCVariable, v.Expression)
			if err != nil {
				return nil, fmt.Errorf("%s.variables[%d] (%s): %w", at, j, v.Name, err)
			}
			is.variables = append(is.variables, variable{name: v.Name, expr: e})
		}
		for j, v := range p.Validations {
			e, err := expr.Compile(expr.OIDCValidation, v.Expression)
			if err != nil {
				return nil, fmt.Errorf("%s.validations[%d]: %w", at, j, err)
			}
			is.validations = append(is.validations, validation{expr: e, message: v.Message})
		}
		out = append(out, is)
	}
	return out, nil
}

// check evaluates the variables in order, then every validation, on a verified token's claims.
// The messages of the validations that are false (or fail: a claim the token lacks) are told
// to the caller.
func (is *Issuer) check(ctx context.Context, claims map[string]any) error {
	vars := map[string]any{}
	data := map[string]any{"claims": claims, "vars": vars}
	for _, v := range is.variables {
		val, err := v.expr.Value(ctx, data)
		if err != nil {
			return &CallerError{Err: ErrUnauthorized, Message: fmt.Sprintf("variable %s: %v", v.name, err)}
		}
		vars[v.name] = val
	}
	var failed []string
	for _, v := range is.validations {
		if ok, err := v.expr.Bool(ctx, data); err != nil || !ok {
			failed = append(failed, v.message)
		}
	}
	if len(failed) > 0 {
		return &CallerError{Err: ErrUnauthorized, Message: strings.Join(failed, "; ")}
	}
	return nil
}

// errNoKey is a token that no key of its issuer verifies.
var errNoKey = errors.New("no key of the issuer verifies the token's signature")

// Tokens verifies OIDC tokens and keeps what it fetched to do so: each issuer's discovery
// document (an hour) and keys (fetched again when a token names a key they lack, at most every
// refetchEvery). The zero value is ready to use.
type Tokens struct {
	// Client fetches discovery documents and keys; nil is a client with a 10 s timeout.
	Client *http.Client
	// GoogleJWKS is where Google's keys are fetched from (default GoogleJWKS); tests serve
	// their own.
	GoogleJWKS string

	mu      sync.Mutex
	issuers map[string]*discovered
	google  *keySet
}
