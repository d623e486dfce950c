package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// pair makes a self-signed certificate and its key, PEM encoded.
func pair(t *testing.T) (cert, key []byte) {
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
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestClientConfig(t *testing.T) {
	cert, key := pair(t)
	_, otherKey := pair(t)
	for _, tc := range []struct {
		name           string
		ca, cert, key  []byte
		wantNil        bool
		wantCA, wantKP bool
		wantErr        string
	}{
		{name: "nothing", wantNil: true},
		{name: "ca", ca: cert, wantCA: true},
		{name: "client certificate", cert: cert, key: key, wantKP: true},
		{name: "both", ca: cert, cert: cert, key: key, wantCA: true, wantKP: true},
		{name: "ca not PEM", ca: []byte("not a certificate"), wantErr: "ca.crt holds no PEM certificate"},
		{name: "cert without key", cert: cert, wantErr: "needs both tls.crt and tls.key"},
		{name: "key without cert", key: key, wantErr: "needs both tls.crt and tls.key"},
		{name: "key of another certificate", cert: cert, key: otherKey, wantErr: "tls.crt and tls.key: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := FromSecret(map[string][]byte{"ca.crt": tc.ca, "tls.crt": tc.cert, "tls.key": tc.key})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Fatalf("error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cfg == nil) != tc.wantNil {
				t.Fatalf("config %v, want nil: %v", cfg, tc.wantNil)
			}
			if cfg == nil {
				return
			}
			if (cfg.RootCAs != nil) != tc.wantCA || (len(cfg.Certificates) == 1) != tc.wantKP {
				t.Fatalf("RootCAs set %v, certificates %d; want CA %v, pair %v", cfg.RootCAs != nil, len(cfg.Certificates), tc.wantCA, tc.wantKP)
			}
		})
	}
}
