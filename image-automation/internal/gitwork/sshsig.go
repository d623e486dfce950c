package gitwork

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"

	"golang.org/x/crypto/ssh"
)

// SSHSigner signs commits as `git -c gpg.format=ssh commit -S` does: an armored SSHSIG
// (OpenSSH's PROTOCOL.sshsig) over the commit, in the namespace "git", with SHA-512. git
// verify-commit checks it against an allowed-signers file; forges show it as verified when the
// key is the author's signing key.
type SSHSigner struct{ signer ssh.Signer }

// NewSSHSigner reads an OpenSSH or PEM private key, decrypting it with passphrase when it is
// protected. Errors never quote the key.
func NewSSHSigner(key, passphrase []byte) (*SSHSigner, error) {
	s, err := ssh.ParsePrivateKey(key)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing) && len(passphrase) == 0:
		return nil, errors.New("the SSH key is encrypted and the Secret has no passphrase")
	case errors.As(err, &missing):
		if s, err = ssh.ParsePrivateKeyWithPassphrase(key, passphrase); err != nil {
			return nil, errors.New("passphrase does not decrypt the SSH key")
		}
	case err != nil:
		return nil, errors.New("not an OpenSSH or PEM private key")
	}
	return &SSHSigner{signer: s}, nil
}

// PublicKey is the signer's public key in authorized_keys form, for allowed-signers files.
func (s *SSHSigner) PublicKey() []byte { return ssh.MarshalAuthorizedKey(s.signer.PublicKey()) }

const (
	sshsigMagic     = "SSHSIG"
	sshsigNamespace = "git"
	sshsigHash      = "sha512"
)

// Sign implements go-git's Signer.
func (s *SSHSigner) Sign(message io.Reader) ([]byte, error) {
	h := sha512.New()
	if _, err := io.Copy(h, message); err != nil {
		return nil, err
	}
	// What is signed: the magic, then namespace, reserved, hash algorithm and digest as SSH
	// strings.
	signed := []byte(sshsigMagic)
	signed = appendString(signed, []byte(sshsigNamespace))
	signed = appendString(signed, nil)
	signed = appendString(signed, []byte(sshsigHash))
	signed = appendString(signed, h.Sum(nil))
	var sig *ssh.Signature
	var err error
	if as, ok := s.signer.(ssh.AlgorithmSigner); ok && s.signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		// ssh-rsa means SHA-1, which ssh-keygen refuses in signatures.
		sig, err = as.SignWithAlgorithm(rand.Reader, signed, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = s.signer.Sign(rand.Reader, signed)
	}
	if err != nil {
		return nil, err
	}
	blob := []byte(sshsigMagic)
	blob = binary.BigEndian.AppendUint32(blob, 1)
	blob = appendString(blob, s.signer.PublicKey().Marshal())
	blob = appendString(blob, []byte(sshsigNamespace))
	blob = appendString(blob, nil)
	blob = appendString(blob, []byte(sshsigHash))
	blob = appendString(blob, ssh.Marshal(sig))
	return armorSSHSig(blob), nil
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// armorSSHSig wraps the base64 blob at 70 columns, as ssh-keygen -Y sign does.
func armorSSHSig(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var out bytes.Buffer
	out.WriteString("-----BEGIN SSH SIGNATURE-----\n")
	for len(enc) > 70 {
		out.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	out.WriteString(enc + "\n-----END SSH SIGNATURE-----\n")
	return out.Bytes()
}
