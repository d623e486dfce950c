package controller

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http/httptest"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"
)

// testIssuer is an OIDC issuer on loopback (go-oidc's test server: discovery at
// /.well-known/openid-configuration, keys at /keys) with an RSA key made by the test.
type testIssuer struct {
	URL string
	key *rsa.PrivateKey
	srv *httptest.Server
}

func startIssuer() (*testIssuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ts := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: "test-key", Algorithm: "RS256"}}}
	srv := httptest.NewServer(ts)
	ts.SetIssuer(srv.URL)
	return &testIssuer{URL: srv.URL, key: key, srv: srv}, nil
}

func (is *testIssuer) Close() { is.srv.Close() }

// token signs claims, with iat and exp an hour around now unless they say.
func (is *testIssuer) token(claims map[string]any) string {
	c := map[string]any{"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return oidctest.SignIDToken(is.key, "test-key", "RS256", string(b))
}
