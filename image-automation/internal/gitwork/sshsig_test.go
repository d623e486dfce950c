package gitwork

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// sshKey returns an OpenSSH private key, encrypted with passphrase when set.
func sshKey(t *testing.T, key crypto.PrivateKey, passphrase string) []byte {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(key, "")
	}
	must(t, err)
	return pem.EncodeToMemory(block)
}

// git verify-commit, with the key as the committer's in an allowed-signers file, accepts the
// signature: what a forge or a reviewer's git does with gpg.format=ssh.
func TestSSHSignedCommitVerifies(t *testing.T) {
	for _, tool := range []string{"git", "ssh-keygen"} {
		testenv.NeedTool(t, tool)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	ctx := context.Background()
	for _, tc := range []struct {
		name, passphrase string
		key              crypto.PrivateKey
	}{{"ed25519", "", ed}, {"ecdsa", "", ec}, {"rsa", "", rs}} {
		t.Run(tc.name, func(t *testing.T) {
			url := seed(t, map[string]string{"a.yaml": "a: 1\n"})
			c, err := Sync(ctx, filepath.Join(t.TempDir(), "c"), remote(t, url), Ref{Branch: "main"}, "")
			must(t, err)
			signer, err := NewSSHSigner(sshKey(t, tc.key, tc.passphrase), []byte(tc.passphrase))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(c.Dir(), "a.yaml"), []byte("a: 2\n"), 0o644))
			h, err := c.Commit([]string{"a.yaml"}, "signed", Author{Name: "plumb", Email: "plumb@example.com", Signer: signer})
			must(t, err)

			allowed := filepath.Join(t.TempDir(), "allowed_signers")
			must(t, os.WriteFile(allowed, append([]byte("plumb@example.com "), signer.PublicKey()...), 0o600))
			out, err := exec.Command("git", "-C", c.Dir(), "-c", "gpg.ssh.allowedSignersFile="+allowed,
				"verify-commit", "--raw", h.String()).CombinedOutput()
			if err != nil || !strings.Contains(string(out), `Good "git" signature for plumb@example.com`) {
				t.Fatalf("git verify-commit: %v\n%s", err, out)
			}

			// Another key does not verify it.
			_, other, err := ed25519.GenerateKey(rand.Reader)
			must(t, err)
			otherSigner, err := NewSSHSigner(sshKey(t, other, ""), nil)
			must(t, err)
			must(t, os.WriteFile(allowed, append([]byte("plumb@example.com "), otherSigner.PublicKey()...), 0o600))
			if out, err := exec.Command("git", "-C", c.Dir(), "-c", "gpg.ssh.allowedSignersFile="+allowed,
				"verify-commit", h.String()).CombinedOutput(); err == nil {
				t.Fatalf("verified against another key:\n%s", out)
			}
		})
	}
}

// Key derivation (bcrypt) is slow under the race detector: one encrypted key serves every case.
func TestNewSSHSignerPassphrase(t *testing.T) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	locked := sshKey(t, ed, "open-sesame")
	for _, tc := range []struct {
		name, want string
		key, pass  []byte
	}{
		{name: "not a key", key: []byte("hunter2"), want: "not an OpenSSH or PEM private key"},
		{name: "passphrase missing", key: locked, want: "has no passphrase"},
		{name: "wrong passphrase", key: locked, pass: []byte("hunter2"), want: "does not decrypt"},
		{name: "right passphrase", key: locked, pass: []byte("open-sesame")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSSHSigner(tc.key, tc.pass)
			if tc.want == "" {
				must(t, err)
				if !strings.HasPrefix(string(s.PublicKey()), "ssh-ed25519 ") {
					t.Fatalf("public key %q", s.PublicKey())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %v, want one about %q that quotes nothing", err, tc.want)
			}
		})
	}
}
