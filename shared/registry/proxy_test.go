package registry

import (
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	regserver "github.com/google/go-containerregistry/pkg/registry"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/proxy"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

// A proxy in the credentials carries every request, over plain HTTP (absolute-form) and over
// TLS (CONNECT), with its basic auth; a refusal names the proxy, never its password.
func TestProxy(t *testing.T) {
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	plain := serve(t, nil)
	srv := httptest.NewTLSServer(regserver.New(regserver.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	tlsHost := strings.TrimPrefix(srv.URL, "https://")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	px := nettest.NewProxy(t, "proxyuser", "proxy-s3cret")

	good, err := proxy.Parse(px.URL.String(), "proxyuser", "proxy-s3cret")
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := proxy.Parse(px.URL.String(), "proxyuser", "wrong-s3cret")
	for _, tc := range []struct {
		name string
		host string
		c    Credentials
	}{
		{"plain HTTP", plain, Credentials{Insecure: true}},
		{"TLS", tlsHost, Credentials{CA: ca}},
		{"TLS, shared transport", tlsHost, Credentials{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			before := px.Served(tc.host)
			c := tc.c
			c.Proxy = good
			err := head(tc.host, "org/app", c)
			if tc.c.CA == nil && !tc.c.Insecure {
				// The shared transport trusts the system CAs only: the proxy was reached, the
				// registry's certificate refused.
				g.Expect(err).To(MatchError(ContainSubstring("x509")))
			} else {
				g.Expect(statusOf(err)).To(Equal(http.StatusNotFound), "reached through the proxy: %v", err)
			}
			g.Expect(px.Served(tc.host)).To(BeNumerically(">", before))

			c.Proxy = bad
			err = head(tc.host, "org/app", c)
			g.Expect(errors.Is(err, proxy.ErrProxy)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring(px.Addr))
			g.Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
		})
	}
	g := NewWithT(t)
	// The shared transport is left without the proxy.
	g.Expect(sharedTransport.Load().Proxy).NotTo(BeNil()) // the environment's, as before
}
