package receiver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	. "github.com/onsi/gomega"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/expr"
)

// issuer is an OIDC issuer on loopback (go-oidc's test server: discovery and keys over HTTP)
// with an RSA key made here; it counts the fetches of its keys.
type issuer struct {
	URL       string
	key       *rsa.PrivateKey
	keyID     string
	keyGets   atomic.Int32
	discovery atomic.Int32
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key, keyID: "key-1"}
	ts := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: is.keyID, Algorithm: "RS256"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/keys":
			is.keyGets.Add(1)
		case "/.well-known/openid-configuration":
			is.discovery.Add(1)
		}
		ts.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ts.SetIssuer(srv.URL)
	is.URL = srv.URL
	return is
}

// token signs claims (with iat and exp an hour around now unless given) with the issuer's key.
func (is *issuer) token(claims map[string]any) string {
	return signToken(is.key, is.keyID, claims)
}

func signToken(key *rsa.PrivateKey, kid string, claims map[string]any) string {
	c := map[string]any{"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return oidctest.SignIDToken(key, kid, "RS256", string(b))
}

func bearerHeader(tok string) http.Header {
	return header("Authorization", "Bearer "+tok)
}

func TestGenericOIDC(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	gha := newIssuer(t)
	other := newIssuer(t)
	issuers, err := Issuers([]notifyv1.OIDCProvider{{
		IssuerURL: gha.URL,
		Variables: []notifyv1.OIDCVariable{
			{Name: "owner", Expression: "claims.repository_owner"},
			{Name: "allowed", Expression: "[vars.owner + '/app', vars.owner + '/infra']"},
		},
		Validations: []notifyv1.OIDCValidation{
			{Expression: "vars.owner == 'my-org'", Message: "wrong org"},
			{Expression: "claims.repository in vars.allowed", Message: "repo not in allowlist"},
			{Expression: "claims.ref == 'refs/heads/main'", Message: "main branch only"},
		},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	tokens := &Tokens{}
	spec := Spec{Type: notifyv1.GenericOIDCReceiver, Issuers: issuers, Events: []string{"push"}}
	good := map[string]any{"iss": gha.URL, "aud": notifyv1.DefaultOIDCAudience, "sub": "repo:my-org/app:ref:refs/heads/main",
		"repository_owner": "my-org", "repository": "my-org/app", "ref": "refs/heads/main"}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}

	res, err := tokens.Check(ctx, spec, Call{Header: bearerHeader(gha.token(good)), Body: []byte(`{}`)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Trigger).To(BeTrue(), "generic-oidc names no event: events does not filter it")
	g.Expect(res.Claims).To(HaveKeyWithValue("repository", "my-org/app"))

	for name, c := range map[string]struct {
		header  http.Header
		message string // told to the caller
		reason  string // logged
	}{
		"no token":         {header(), "", "no Authorization: Bearer token"},
		"basic auth":       {header("Authorization", "Basic dTpw"), "", "no Authorization: Bearer token"},
		"not a JWT":        {bearerHeader("abc"), "", "not a JWT"},
		"other audience":   {bearerHeader(gha.token(with("aud", "someone-else"))), "", "another audience"},
		"expired":          {bearerHeader(gha.token(with("exp", time.Now().Add(-time.Minute).Unix()))), "", "expired"},
		"unknown issuer":   {bearerHeader(other.token(with("iss", other.URL))), "", "no oidcProvider has issuer"},
		"forged signature": {bearerHeader(signToken(other.key, gha.keyID, good)), "", "signature"},
		"wrong org":        {bearerHeader(gha.token(with("repository_owner", "evil"))), "wrong org; repo not in allowlist", ""},
		"another branch":   {bearerHeader(gha.token(with("ref", "refs/heads/dev"))), "main branch only", ""},
		"missing claim":    {bearerHeader(gha.token(with("ref", nil))), "main branch only", ""},
	} {
		_, err := tokens.Check(ctx, spec, Call{Header: c.header})
		g.Expect(errors.Is(err, ErrUnauthorized)).To(BeTrue(), "%s: %v", name, err)
		var ce *CallerError
		if c.message != "" {
			g.Expect(errors.As(err, &ce)).To(BeTrue(), name)
			g.Expect(ce.Message).To(Equal(c.message), name)
		} else {
			g.Expect(errors.As(err, &ce)).To(BeFalse(), "%s: only validations are told to the caller", name)
			g.Expect(err.Error()).To(ContainSubstring(c.reason), name)
		}
	}
	g.Expect(gha.discovery.Load()).To(Equal(int32(1)), "the discovery document is kept")

	// Tokens that name keys the issuer does not have make one fetch of its keys, then none for
	// refetchEvery, however many arrive.
	before := gha.keyGets.Load()
	for i := range 20 {
		_, err := tokens.Check(ctx, spec, Call{Header: bearerHeader(signToken(other.key, fmt.Sprintf("made-up-%d", i), good))})
		g.Expect(err).To(MatchError(ContainSubstring("no key of the issuer")))
	}
	g.Expect(gha.keyGets.Load() - before).To(BeNumerically("<=", 1))
	// A kept key still verifies in the meantime.
	_, err = tokens.Check(ctx, spec, Call{Header: bearerHeader(gha.token(good))})
	g.Expect(err).NotTo(HaveOccurred())

	// An issuer that cannot be discovered refuses its tokens, and is not asked again at once.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	downIssuers, err := Issuers([]notifyv1.OIDCProvider{{IssuerURL: down.URL, Validations: []notifyv1.OIDCValidation{{Expression: "true", Message: "x"}}}})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = tokens.Check(ctx, Spec{Type: notifyv1.GenericOIDCReceiver, Issuers: downIssuers},
		Call{Header: bearerHeader(signToken(other.key, "k", map[string]any{"iss": down.URL, "aud": notifyv1.DefaultOIDCAudience}))})
	g.Expect(err).To(MatchError(ContainSubstring("OIDC discovery of " + down.URL)))
	g.Expect(errors.Is(err, ErrUnauthorized)).To(BeTrue())
}

func TestIssuersRefuseBadSpecs(t *testing.T) {
	ok := []notifyv1.OIDCValidation{{Expression: "claims.sub == 'x'", Message: "m"}}
	for name, c := range map[string]struct {
		providers []notifyv1.OIDCProvider
		compile   bool
		says      string
	}{
		"no validations":       {[]notifyv1.OIDCProvider{{IssuerURL: "https://a"}}, false, "spec.oidcProviders[0] has no validations"},
		"same issuer twice":    {[]notifyv1.OIDCProvider{{IssuerURL: "https://a", Validations: ok}, {IssuerURL: "https://a", Validations: ok}}, false, "spec.oidcProviders[1].issuerURL"},
		"not a URL":            {[]notifyv1.OIDCProvider{{IssuerURL: "a", Validations: ok}}, false, "not an http(s) URL"},
		"variable name":        {[]notifyv1.OIDCProvider{{IssuerURL: "https://a", Validations: ok, Variables: []notifyv1.OIDCVariable{{Name: "a-b", Expression: "1"}}}}, false, "variables[0].name"},
		"validation not bool":  {[]notifyv1.OIDCProvider{{IssuerURL: "https://a", Validations: []notifyv1.OIDCValidation{{Expression: "'yes'", Message: "m"}}}}, true, "spec.oidcProviders[0].validations[0]"},
		"variable syntax":      {[]notifyv1.OIDCProvider{{IssuerURL: "https://a", Validations: ok, Variables: []notifyv1.OIDCVariable{{Name: "v", Expression: "claims."}}}}, true, "variables[0] (v)"},
		"undeclared reference": {[]notifyv1.OIDCProvider{{IssuerURL: "https://a", Validations: []notifyv1.OIDCValidation{{Expression: "req.x == 1", Message: "m"}}}}, true, "undeclared reference to 'req'"},
	} {
		_, err := Issuers(c.providers)
		if err == nil || !strings.Contains(err.Error(), c.says) || errors.Is(err, expr.ErrCompile) != c.compile {
			t.Errorf("%s: Issuers = %v; want an error saying %q (compile error %v)", name, err, c.says, c.compile)
		}
	}
}

// pubsubPush is a Pub/Sub push of an Artifact Registry notification, as the subscription sends
// it (the message wrapped) or unwrapped.
func pubsubPush(notification string, wrapped bool) []byte {
	if !wrapped {
		return []byte(notification)
	}
	return []byte(`{"message":{"attributes":{},"data":"` + base64.StdEncoding.EncodeToString([]byte(notification)) +
		`","messageId":"2070443601311540","message_id":"2070443601311540","publishTime":"2021-02-26T19:13:55.749Z","publish_time":"2021-02-26T19:13:55.749Z"},"subscription":"projects/my-project/subscriptions/flux-gar"}`)
}

func TestGCR(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	google := newIssuer(t) // its /keys plays Google's JWKS
	tokens := &Tokens{GoogleJWKS: google.URL + "/keys"}
	const (
		email    = "gar-push@my-project.iam.gserviceaccount.com"
		audience = "https://flux.example.com/hook/0123"
	)
	spec := Spec{Type: notifyv1.GCRReceiver, Token: "salt", Secret: map[string][]byte{"email": []byte(email), "audience": []byte(audience)}}
	const insert = `{"action":"INSERT","digest":"us-east1-docker.pkg.dev/my-project/my-repo/hello-world@sha256:6ec128e26cd5","tag":"us-east1-docker.pkg.dev/my-project/my-repo/hello-world:1.1"}`
	claims := func(kv ...any) map[string]any {
		c := map[string]any{"iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890", "email": email, "email_verified": true, "sub": "1234567890"}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}

	for _, wrapped := range []bool{true, false} {
		res, err := tokens.Check(ctx, spec, Call{Header: bearerHeader(google.token(claims())), Body: pubsubPush(insert, wrapped)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Trigger).To(BeTrue())
		g.Expect(res.Event).To(Equal("INSERT"))
		g.Expect(string(res.Payload)).To(Equal(insert), "filters see the notification, not the push")
	}
	// Google also writes its issuer without the scheme.
	_, err := tokens.Check(ctx, spec, Call{Header: bearerHeader(google.token(claims("iss", "accounts.google.com"))), Body: pubsubPush(insert, true)})
	g.Expect(err).NotTo(HaveOccurred())
	// events filters on the action.
	filtered := spec
	filtered.Events = []string{"DELETE"}
	res, err := tokens.Check(ctx, filtered, Call{Header: bearerHeader(google.token(claims())), Body: pubsubPush(insert, true)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Trigger).To(BeFalse())

	for name, c := range map[string]struct {
		claims map[string]any
		err    error
		says   string
	}{
		"other service account": {claims("email", "someone@evil.iam.gserviceaccount.com"), ErrUnauthorized, "not the Secret's email"},
		"email not verified":    {claims("email_verified", false), ErrUnauthorized, "not verified"},
		"other audience":        {claims("aud", "https://flux.example.com/hook/other"), ErrUnauthorized, "another audience"},
		"not Google":            {claims("iss", "https://evil.example.com"), ErrUnauthorized, "different provider"},
		"expired":               {claims("exp", time.Now().Add(-time.Minute).Unix()), ErrUnauthorized, "expired"},
	} {
		_, err := tokens.Check(ctx, spec, Call{Header: bearerHeader(google.token(c.claims)), Body: pubsubPush(insert, true)})
		g.Expect(errors.Is(err, c.err)).To(BeTrue(), "%s: %v", name, err)
		g.Expect(err.Error()).To(ContainSubstring(c.says), name)
		g.Expect(err.Error()).NotTo(ContainSubstring(audience), "%s: the audience (often the webhook's URL) is not told", name)
	}
	_, err = tokens.Check(ctx, spec, Call{Header: header(), Body: pubsubPush(insert, true)})
	g.Expect(errors.Is(err, ErrUnauthorized)).To(BeTrue())
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = tokens.Check(ctx, spec, Call{Header: bearerHeader(signToken(other, google.keyID, claims())), Body: pubsubPush(insert, true)})
	g.Expect(errors.Is(err, ErrUnauthorized)).To(BeTrue(), "a token signed by another key: %v", err)

	_, err = tokens.Check(ctx, spec, Call{Header: bearerHeader(google.token(claims())), Body: pubsubPush(`{"tag":"x"}`, true)})
	g.Expect(errors.Is(err, ErrBadRequest)).To(BeTrue(), "a message without an action: %v", err)
	_, err = tokens.Check(ctx, spec, Call{Header: bearerHeader(google.token(claims())), Body: []byte(`[1]`)})
	g.Expect(errors.Is(err, ErrBadRequest)).To(BeTrue())

	noEmail := spec
	noEmail.Secret = map[string][]byte{"audience": []byte(audience)}
	_, err = tokens.Check(ctx, noEmail, Call{Header: bearerHeader(google.token(claims())), Body: pubsubPush(insert, true)})
	g.Expect(errors.Is(err, ErrNotReady)).To(BeTrue())
}

// A CDEvent in a structured CloudEvent is what the filters see.
func TestCDEventPayload(t *testing.T) {
	res, err := Verify("cdevents", "", nil, Call{Header: header("Content-Type", "application/cloudevents+json; charset=utf-8"), Body: structured(cdChangeMerged)})
	if err != nil || !res.Trigger || string(res.Payload) != string(cdChangeMerged) || res.Event != "dev.cdevents.change.merged.0.2.0" {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
	res, err = Verify("cdevents", "", nil, Call{Header: header(), Body: cdChangeMerged})
	if err != nil || res.Payload != nil {
		t.Fatalf("a binary-mode CDEvent is the body itself: %+v, %v", res, err)
	}
}
