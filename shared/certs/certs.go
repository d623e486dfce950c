// Package certs turns the keys of a certSecretRef Secret (ca.crt, and tls.crt with tls.key for a
// client certificate) into a TLS client configuration. Every controller that talks to a server
// named by a user (Git hosts, registries, chart repositories, chat services) reads the same keys.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// CAKey is the Secret key of the PEM certificate authorities a server's certificate is checked
// against (instead of the system's).
const CAKey = "ca.crt"

// ClientConfig returns a TLS configuration that trusts ca and presents the cert/key pair, or nil
// when both are empty. The errors name the keys, never their contents.
func ClientConfig(ca, cert, key []byte) (*tls.Config, error) {
	if len(ca) == 0 && len(cert) == 0 && len(key) == 0 {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New(CAKey + " holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if len(cert) > 0 || len(key) > 0 {
		if len(cert) == 0 || len(key) == 0 {
			return nil, fmt.Errorf("a client certificate needs both %s and %s", corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
		}
		// crypto/tls's errors describe the PEM input, never quote it.
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("%s and %s: %w", corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// FromSecret is ClientConfig over a Secret's data.
func FromSecret(data map[string][]byte) (*tls.Config, error) {
	return ClientConfig(data[CAKey], data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
}
