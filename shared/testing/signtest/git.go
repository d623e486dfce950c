package signtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// The signers below have go-git's Signer method (Sign(io.Reader) ([]byte, error)), so that
// CommitOptions.Signer takes them; they return the armored signature that git keeps in a commit's
// or tag's gpgsig header.

// PGPKey makes an OpenPGP key of name <email> and returns it with its ASCII-armored public key,
// as `gpg --export --armor` writes it into a Secret's *.asc.
func PGPKey(name, email string) (*openpgp.Entity, []byte, error) {
	e, err := openpgp.NewEntity(name, "", email, nil)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, nil, err
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	return e, buf.Bytes(), nil
}

// PGPSigner signs as `git commit -S` does with an OpenPGP key: an armored detached signature.
type PGPSigner struct{ Key *openpgp.Entity }

// Sign returns the armored OpenPGP signature of message.
func (s PGPSigner) Sign(message io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, s.Key, message, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SSHKey makes an Ed25519 SSH key and returns its signer and its public key in authorized_keys
// form (type and base64, no comment), for a Secret's allowed_signers or *.sshpub.
func SSHKey() (ssh.Signer, string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, "", err
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))), nil
}

// SSHSigner signs as `git -c gpg.format=ssh commit -S` does (ssh-keygen -Y sign): an armored
// SSH signature with SHA-512, in Namespace ("git" for git; another one for tests that want it
// refused).
type SSHSigner struct {
	Key       ssh.Signer
	Namespace string
}

// Sign returns the armored SSH signature of message.
func (s SSHSigner) Sign(message io.Reader) ([]byte, error) {
	sig, err := sshsig.Sign(message, s.Key, sshsig.HashSHA512, s.Namespace)
	if err != nil {
		return nil, err
	}
	return sshsig.Armor(sig), nil
}
