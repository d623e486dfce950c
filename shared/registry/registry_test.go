package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	regserver "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	. "github.com/onsi/gomega"
)

// serve runs go-containerregistry's in-process registry on loopback, behind wrap if not nil.
func serve(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = regserver.New(regserver.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// basicAuth answers 401 with a Basic challenge unless the request carries user:pass.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func dockerConfig(host, user, pass string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return fmt.Appendf(nil, `{"auths":{"https://%s/v1/":{"auth":%q}}}`, host, auth)
}

// head asks for repo:tag with the options of c.
func head(host, repo string, c Credentials) error {
	ref, err := name.ParseReference(host+"/"+repo+":v1", c.NameOptions()...)
	if err != nil {
		return err
	}
	opts, err := Options(ref.Context(), c)
	if err != nil {
		return err
	}
	_, err = remote.Head(ref, opts...)
	return err
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

func TestCredentials(t *testing.T) {
	host := serve(t, basicAuth("plumb", "s3cret"))
	ref, err := name.ParseReference(host+"/org/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, empty.Image, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "plumb", Password: "s3cret"}))); err != nil {
		t.Fatal(err)
	}

	right, wrong, other := dockerConfig(host, "plumb", "s3cret"), dockerConfig(host, "plumb", "wrong"), dockerConfig("other.example", "plumb", "s3cret")
	tests := []struct {
		name string
		c    Credentials
		ok   bool
	}{
		{"anonymous", Credentials{}, false},
		{"username and password", Credentials{Username: "plumb", Password: "s3cret"}, true},
		{"wrong password", Credentials{Username: "plumb", Password: "wrong"}, false},
		{"dockerconfig", Credentials{DockerConfigs: [][]byte{right}}, true},
		{"dockerconfigs tried in order", Credentials{DockerConfigs: [][]byte{other, right}}, true},
		{"the first dockerconfig with the registry wins", Credentials{DockerConfigs: [][]byte{wrong, right}}, false},
		{"dockerconfig wins over username and password", Credentials{Username: "plumb", Password: "wrong", DockerConfigs: [][]byte{right}}, true},
		{"username and password when no dockerconfig has the registry", Credentials{Username: "plumb", Password: "s3cret", DockerConfigs: [][]byte{other}}, true},
		{"credentials of another registry only", Credentials{DockerConfigs: [][]byte{other}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			tt.c.Insecure = true
			err := head(host, "org/app", tt.c)
			if tt.ok {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(statusOf(err)).To(Equal(http.StatusUnauthorized), "%v", err)
			g.Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
		})
	}

	t.Run("unreadable dockerconfig before the right one", func(t *testing.T) {
		g := NewWithT(t)
		err := head(host, "org/app", Credentials{Insecure: true, DockerConfigs: [][]byte{[]byte("{not json"), right}})
		g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "%v", err)
		g.Expect(err).To(MatchError("authentication failed: .dockerconfigjson is not valid JSON"))
	})
}

// Plain HTTP only with Insecure: go-containerregistry would use it for loopback and private
// network registries by itself, and send the credentials in the clear.
func TestPlainHTTPNeedsInsecure(t *testing.T) {
	g := NewWithT(t)
	var requests atomic.Int32
	host := serve(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			next.ServeHTTP(w, r)
		})
	})
	err := head(host, "org/app", Credentials{Username: "u", Password: "p"})
	g.Expect(err).To(MatchError(ContainSubstring(host + " would be reached over plain HTTP; set insecure: true to allow it")))
	g.Expect(requests.Load()).To(BeZero())

	err = head(host, "org/app", Credentials{Username: "u", Password: "p", Insecure: true})
	g.Expect(statusOf(err)).To(Equal(http.StatusNotFound), "reached over plain HTTP: %v", err)
	g.Expect(requests.Load()).NotTo(BeZero())
}

// selfSigned makes a certificate that is its own CA, and its key, PEM encoded.
func selfSigned(t *testing.T) (cert, key []byte, pair tls.Certificate) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plumb-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	key = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err = tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, pair
}

func TestTLS(t *testing.T) {
	clientCert, clientKey, _ := selfSigned(t)
	otherCert, otherKey, _ := selfSigned(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCert)
	srv := httptest.NewUnstartedServer(regserver.New(regserver.Logger(log.New(io.Discard, "", 0))))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	tests := []struct {
		name    string
		c       Credentials
		reached bool   // the registry answered (404: nothing was pushed)
		err     string // part of the error otherwise
		auth    bool   // the error is ErrAuth
	}{
		{"private CA", Credentials{CA: ca}, true, "", false},
		{"private CA and client certificate", Credentials{CA: ca, Cert: clientCert, Key: clientKey}, true, "", false},
		{"system CAs", Credentials{}, false, "x509: certificate signed by unknown authority", false},
		{"client certificate the server does not trust", Credentials{CA: ca, Cert: otherCert, Key: otherKey}, false, "tls: unknown certificate authority", false},
		{"CA not PEM", Credentials{CA: []byte("not pem")}, false, "authentication failed: ca.crt holds no PEM certificate", true},
		{"client certificate without key", Credentials{CA: ca, Cert: clientCert}, false, "authentication failed: a client certificate needs both tls.crt and tls.key", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := head(host, "org/app", tt.c)
			if tt.reached {
				g.Expect(statusOf(err)).To(Equal(http.StatusNotFound), "%v", err)
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tt.err)))
			g.Expect(errors.Is(err, ErrAuth)).To(Equal(tt.auth), "a Secret's bad TLS keys are ErrAuth: %v", err)
			g.Expect(err.Error()).NotTo(ContainSubstring("PRIVATE KEY"))
		})
	}
}

// Registries without a TLS setting share one transport, so that connections outlive a reconcile.
func TestTransport(t *testing.T) {
	cert, _, _ := selfSigned(t)
	tests := []struct {
		name       string
		c          Credentials
		shared     bool
		httpsOnly  bool
		rootsFromC bool
	}{
		{"none", Credentials{Username: "u", Password: "p"}, true, true, false},
		{"insecure", Credentials{Insecure: true}, true, false, false},
		{"CA", Credentials{CA: cert}, false, true, true},
		{"insecure with CA", Credentials{Insecure: true, CA: cert}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rt, err := tt.c.transport()
			g.Expect(err).NotTo(HaveOccurred())
			h, ok := rt.(httpsOnly)
			g.Expect(ok).To(Equal(tt.httpsOnly))
			if ok {
				rt = h.next
			}
			tr, ok := rt.(*http.Transport)
			g.Expect(ok).To(BeTrue())
			g.Expect(tr == sharedTransport.Load()).To(Equal(tt.shared))
			if tt.rootsFromC {
				g.Expect(tr.TLSClientConfig.RootCAs).NotTo(BeNil())
				g.Expect(sharedTransport.Load().TLSClientConfig == nil || sharedTransport.Load().TLSClientConfig.RootCAs == nil).To(BeTrue(), "the shared transport is left alone")
			}
		})
	}
}

func TestNameOptions(t *testing.T) {
	g := NewWithT(t)
	repo, err := name.NewRepository("registry.example:5000/org/app", Credentials{Insecure: true}.NameOptions()...)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(repo.Scheme()).To(Equal("http"))
	repo, err = name.NewRepository("registry.example:5000/org/app", Credentials{}.NameOptions()...)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(repo.Scheme()).To(Equal("https"))
}

func TestFromDockerConfig(t *testing.T) {
	const pass = "s3cret-pa55"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name     string
		doc      string
		registry string
		found    bool
		want     authn.AuthConfig
		err      string // the whole error message
	}{
		{"auth", `{"auths":{"ghcr.io":{"auth":"` + b64("u:"+pass) + `"}}}`, "ghcr.io", true, authn.AuthConfig{Username: "u", Password: pass}, ""},
		{"password with a colon", `{"auths":{"ghcr.io":{"auth":"` + b64("u:"+pass+":x") + `"}}}`, "ghcr.io", true, authn.AuthConfig{Username: "u", Password: pass + ":x"}, ""},
		{"username and password", `{"auths":{"https://ghcr.io":{"username":"u","password":"` + pass + `"}}}`, "ghcr.io", true, authn.AuthConfig{Username: "u", Password: pass}, ""},
		{"auth wins over username and password", `{"auths":{"ghcr.io":{"username":"x","password":"y","auth":"` + b64("u:"+pass) + `"}}}`, "ghcr.io", true, authn.AuthConfig{Username: "u", Password: pass}, ""},
		{"identity token", `{"auths":{"ghcr.io":{"identitytoken":"` + pass + `"}}}`, "ghcr.io", true, authn.AuthConfig{IdentityToken: pass}, ""},
		{"Docker Hub", `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("u:"+pass) + `"}}}`, name.DefaultRegistry, true, authn.AuthConfig{Username: "u", Password: pass}, ""},
		{"docker.io", `{"auths":{"docker.io":{"auth":"` + b64("u:"+pass) + `"}}}`, name.DefaultRegistry, true, authn.AuthConfig{Username: "u", Password: pass}, ""},
		{"port", `{"auths":{"http://127.0.0.1:5000/v2/":{"auth":"` + b64("u:"+pass) + `"}}}`, "127.0.0.1:5000", true, authn.AuthConfig{Username: "u", Password: pass}, ""},
		{"other port", `{"auths":{"127.0.0.1:5000":{"auth":"` + b64("u:"+pass) + `"}}}`, "127.0.0.1:5001", false, authn.AuthConfig{}, ""},
		{"other registry", `{"auths":{"quay.io":{"auth":"` + b64("u:"+pass) + `"}}}`, "ghcr.io", false, authn.AuthConfig{}, ""},
		{"no auths", `{}`, "ghcr.io", false, authn.AuthConfig{}, ""},
		{"other registry's auth is not read", `{"auths":{"quay.io":{"auth":"!!"}}}`, "ghcr.io", false, authn.AuthConfig{}, ""},
		{"not JSON", `{"auths":` + pass, "ghcr.io", false, authn.AuthConfig{}, "authentication failed: .dockerconfigjson is not valid JSON"},
		{"auths not an object", `{"auths":["` + pass + `"]}`, "ghcr.io", false, authn.AuthConfig{}, "authentication failed: .dockerconfigjson is not valid JSON"},
		{"auth not base64", `{"auths":{"ghcr.io":{"auth":"` + pass + `!"}}}`, "ghcr.io", false, authn.AuthConfig{}, "authentication failed: .dockerconfigjson: auth of ghcr.io is not base64"},
		{"auth not user:password", `{"auths":{"ghcr.io":{"auth":"` + b64(pass) + `"}}}`, "ghcr.io", false, authn.AuthConfig{}, "authentication failed: .dockerconfigjson: auth of ghcr.io is not user:password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			a, found, err := fromDockerConfig([]byte(tt.doc), tt.registry)
			if tt.err != "" {
				g.Expect(err).To(MatchError(tt.err))
				g.Expect(errors.Is(err, ErrAuth)).To(BeTrue())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(found).To(Equal(tt.found))
			if !found {
				return
			}
			got, err := a.Authorization()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(*got).To(Equal(tt.want))
		})
	}
}

func TestHostOf(t *testing.T) {
	cases := map[string]string{
		"ghcr.io":                         "ghcr.io",
		"https://ghcr.io":                 "ghcr.io",
		"https://index.docker.io/v1/":     "index.docker.io",
		"docker.io":                       "index.docker.io",
		"https://registry-1.docker.io/v2": "index.docker.io",
		"127.0.0.1:5000":                  "127.0.0.1:5000",
		"http://127.0.0.1:5000/v2/":       "127.0.0.1:5000",
	}
	for in, want := range cases {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}
