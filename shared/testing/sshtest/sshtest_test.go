package sshtest

import (
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestNewKey(t *testing.T) {
	plain, pub := NewKey(t, "")
	if _, err := ssh.ParsePrivateKey(plain); err != nil {
		t.Fatalf("plain key does not parse: %v", err)
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub)); err != nil {
		t.Fatalf("public key %q does not parse: %v", pub, err)
	}
	locked, _ := NewKey(t, "s3cret")
	if _, err := ssh.ParsePrivateKey(locked); err == nil {
		t.Fatal("an encrypted key parsed without its passphrase")
	}
	if _, err := ssh.ParsePrivateKeyWithPassphrase(locked, []byte("s3cret")); err != nil {
		t.Fatalf("encrypted key does not parse with its passphrase: %v", err)
	}
}
