package cloudtest

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

// NewTLSServer serves h over TLS on loopback with a certificate for the host names (a cloud
// registry's, reached through Proxy). It returns the loopback host:port and the PEM of the
// certificate, which is its own CA.
func NewTLSServer(t testing.TB, h http.Handler, hosts ...string) (addr string, caPEM []byte) {
	t.Helper()
	der, key := nettest.SelfSigned(t, hosts...)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "https://"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
