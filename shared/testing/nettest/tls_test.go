package nettest

import (
	"crypto/x509"
	"testing"
)

// A self-signed certificate is its own CA for 127.0.0.1 and the host names it was made for,
// and for no other name.
func TestSelfSignedVerifiesForItsNames(t *testing.T) {
	der, key := SelfSigned(t, "registry.example.com")
	if key == nil {
		t.Fatal("no key")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, name := range []string{"127.0.0.1", "registry.example.com"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example.com"}); err == nil {
		t.Error("the certificate verifies for a name it was not made for")
	}
}
