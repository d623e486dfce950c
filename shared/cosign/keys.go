package cosign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// PEM block types of private keys that LoadPrivateKey reads.
const (
	// cosignEncrypted and sigstoreEncrypted are `cosign generate-key-pair`'s cosign.key (the
	// older and the current name): a PKCS #8 key sealed with scrypt and NaCl secretbox.
	cosignEncrypted   = "ENCRYPTED COSIGN PRIVATE KEY"
	sigstoreEncrypted = "ENCRYPTED SIGSTORE PRIVATE KEY"
	// ecPrivate is SEC 1, as `openssl ecparam -genkey -name prime256v1 -noout` writes it.
	ecPrivate = "EC PRIVATE KEY"
	// pkcs8Private is PKCS #8, as `openssl genpkey -algorithm EC` writes it.
	pkcs8Private = "PRIVATE KEY"
)

// LoadPrivateKey reads an ECDSA P-256 private key from PEM: cosign's encrypted cosign.key
// (opened with password, COSIGN_PASSWORD's value for cosign), or an unencrypted SEC 1
// ("EC PRIVATE KEY") or PKCS #8 ("PRIVATE KEY") block. Other blocks before the key (openssl's
// "EC PARAMETERS") are skipped. Errors wrap ErrKey and never hold key material.
func LoadPrivateKey(data, password []byte) (*Key, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%w: no PEM private key found (want cosign.key, EC PRIVATE KEY or PRIVATE KEY)", ErrKey)
		}
		switch block.Type {
		case cosignEncrypted, sigstoreEncrypted:
			der, err := encrypted.Decrypt(block.Bytes, password)
			if err != nil {
				return nil, fmt.Errorf("%w: cannot decrypt %s (is the password right? cosign's is COSIGN_PASSWORD)", ErrKey, block.Type)
			}
			return parsePKCS8(der)
		case ecPrivate:
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: EC PRIVATE KEY: %v", ErrKey, err)
			}
			return checkCurve(k)
		case pkcs8Private:
			return parsePKCS8(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%w: PKCS #8 keys encrypted by openssl are not read; use cosign.key or an unencrypted key", ErrKey)
		}
	}
}

func parsePKCS8(der []byte) (*Key, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS #8: %v", ErrKey, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T, not an ECDSA P-256 key", ErrKey, k)
	}
	return checkCurve(ec)
}

// checkCurve refuses curves other than P-256, the one cosign's keyed verification expects
// with SHA-256.
func checkCurve(k *ecdsa.PrivateKey) (*Key, error) {
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: curve %s, not P-256 (prime256v1)", ErrKey, k.Curve.Params().Name)
	}
	return &Key{Private: k}, nil
}

// EncryptedPEM is the key as `cosign generate-key-pair` writes cosign.key, sealed with
// password.
func (k *Key) EncryptedPEM(password []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, err
	}
	sealed, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: sigstoreEncrypted, Bytes: sealed}), nil
}
