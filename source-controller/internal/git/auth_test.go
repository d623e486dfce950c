package git

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
)

// newKey returns a new ed25519 private key as PEM, encrypted when passphrase is set, and its
// public key in authorized_keys format.
func newKey(t *testing.T, passphrase string) ([]byte, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

// knownHost is the known_hosts line of the test SSH server with the key given.
func knownHost(t *testing.T, key string) []byte {
	t.Helper()
	u, err := url.Parse(server.SSHAddress())
	if err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf("[%s]:%s %s\n", u.Hostname(), u.Port(), key))
}

// keyBody is a line from the middle of a PEM key: what would show if the key leaked.
func keyBody(pemKey []byte) string {
	lines := strings.Split(strings.TrimSpace(string(pemKey)), "\n")
	return lines[len(lines)/2]
}

func TestNewRemote(t *testing.T) {
	identity, _ := newKey(t, "")
	encrypted, _ := newKey(t, "key-pa55phrase")
	knownHosts := []byte("github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
	const (
		password = "http-pa55word"
		token    = "t0ken-value"
	)
	secrets := []string{password, token, "key-pa55phrase", "wr0ng-phrase", keyBody(identity), keyBody(encrypted)}

	tests := []struct {
		name   string
		url    string
		secret map[string][]byte
		kind   error  // nil when NewRemote succeeds
		msg    string // part of the error message
		check  func(g Gomega, r Remote)
	}{
		{
			"http without secret", "http://example.com/r.git", nil, nil, "",
			func(g Gomega, r Remote) { g.Expect(r.Auth).To(BeNil()); g.Expect(r.CABundle).To(BeNil()) },
		},
		{
			"https basic auth", "https://example.com/r.git",
			map[string][]byte{"username": []byte("u"), "password": []byte(password), "ca.crt": []byte("CA")}, nil, "",
			func(g Gomega, r Remote) {
				g.Expect(r.Auth).To(Equal(&githttp.BasicAuth{Username: "u", Password: password}))
				g.Expect(r.CABundle).To(Equal([]byte("CA")))
			},
		},
		{
			"bearer token wins over basic auth", "https://example.com/r.git",
			map[string][]byte{"bearerToken": []byte(token), "username": []byte("u"), "password": []byte(password)}, nil, "",
			func(g Gomega, r Remote) { g.Expect(r.Auth).To(Equal(&githttp.TokenAuth{Token: token})) },
		},
		{
			"ca.crt alone", "https://example.com/r.git", map[string][]byte{"ca.crt": []byte("CA")}, nil, "",
			func(g Gomega, r Remote) { g.Expect(r.Auth).To(BeNil()); g.Expect(r.CABundle).To(Equal([]byte("CA"))) },
		},
		{"username without password", "https://example.com/r.git", map[string][]byte{"username": []byte("u")}, ErrAuth, "both `username` and `password`", nil},
		{"password without username", "https://example.com/r.git", map[string][]byte{"password": []byte(password)}, ErrAuth, "both `username` and `password`", nil},
		{"empty password", "https://example.com/r.git", map[string][]byte{"username": []byte("u"), "password": {}}, ErrAuth, "both `username` and `password`", nil},
		{
			"ssh URL", "ssh://deploy@example.com:2222/r.git",
			map[string][]byte{"identity": identity, "known_hosts": knownHosts}, nil, "",
			func(g Gomega, r Remote) {
				keys, ok := r.Auth.(*gitssh.PublicKeys)
				g.Expect(ok).To(BeTrue())
				g.Expect(keys.User).To(Equal("deploy"))
				g.Expect(keys.HostKeyCallback).NotTo(BeNil())
			},
		},
		{
			"scp-like URL", "git@example.com:org/r.git",
			map[string][]byte{"identity": identity, "known_hosts": knownHosts}, nil, "",
			func(g Gomega, r Remote) { g.Expect(r.Auth.(*gitssh.PublicKeys).User).To(Equal("git")) },
		},
		{
			"ssh URL without user", "ssh://example.com/r.git",
			map[string][]byte{"identity": identity, "known_hosts": knownHosts}, nil, "",
			func(g Gomega, r Remote) { g.Expect(r.Auth.(*gitssh.PublicKeys).User).To(Equal("git")) },
		},
		{
			"encrypted identity with its passphrase", "ssh://git@example.com/r.git",
			map[string][]byte{"identity": encrypted, "known_hosts": knownHosts, "password": []byte("key-pa55phrase")}, nil, "",
			func(g Gomega, r Remote) { g.Expect(r.Auth).To(BeAssignableToTypeOf(&gitssh.PublicKeys{})) },
		},
		{"ssh without secret", "ssh://git@example.com/r.git", nil, ErrAuth, "spec.secretRef", nil},
		{"no identity", "ssh://git@example.com/r.git", map[string][]byte{"known_hosts": knownHosts, "password": []byte(password)}, ErrAuth, "no `identity`", nil},
		{"no known_hosts", "ssh://git@example.com/r.git", map[string][]byte{"identity": identity}, ErrAuth, "no `known_hosts`", nil},
		{"no known_hosts, scp-like", "git@example.com:r.git", map[string][]byte{"identity": identity}, ErrAuth, "no `known_hosts`", nil},
		{"identity is no key", "ssh://git@example.com/r.git", map[string][]byte{"identity": []byte(password), "known_hosts": knownHosts}, ErrAuth, "not a usable private key", nil},
		{"encrypted identity without passphrase", "ssh://git@example.com/r.git", map[string][]byte{"identity": encrypted, "known_hosts": knownHosts}, ErrAuth, "not a usable private key", nil},
		{
			"encrypted identity with a wrong passphrase", "ssh://git@example.com/r.git",
			map[string][]byte{"identity": encrypted, "known_hosts": knownHosts, "password": []byte("wr0ng-phrase")}, ErrAuth, "not a usable private key", nil,
		},
		{"malformed known_hosts", "ssh://git@example.com/r.git", map[string][]byte{"identity": identity, "known_hosts": []byte("example.com ssh-ed25519 !!!\n")}, ErrAuth, "`known_hosts` cannot be parsed", nil},
		{"file URL", "file:///tmp/r.git", nil, ErrInvalid, `scheme "file"`, nil},
		{"ftp URL", "ftp://example.com/r.git", map[string][]byte{"username": []byte("u"), "password": []byte(password)}, ErrInvalid, `scheme "ftp"`, nil},
		{"git protocol", "git://example.com/r.git", nil, ErrInvalid, `scheme "git"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			// The known_hosts content goes through a temporary file that must not stay behind.
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			r, err := NewRemote(tt.url, tt.secret)
			left, _ := os.ReadDir(tmp)
			g.Expect(left).To(BeEmpty(), "temporary files left behind")
			if tt.kind == nil {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(r.URL).To(Equal(tt.url))
				tt.check(g, r)
				return
			}
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, tt.kind)).To(BeTrue(), "error %q is not %v", err, tt.kind)
			g.Expect(err.Error()).To(ContainSubstring(tt.msg))
			for _, s := range secrets {
				g.Expect(err.Error()).NotTo(ContainSubstring(s))
			}
		})
	}
}

func TestSSH(t *testing.T) {
	r := newRepo(t)
	c := r.commit("main", files{"app.yaml": file("app"), "run.sh": exe("#!/bin/sh\n")})
	r.push("refs/heads/main")
	r.setDefault("main")

	// The accepted key, encrypted, and keys the server does not know.
	block, err := ssh.MarshalPrivateKeyWithPassphrase(clientPriv, "", []byte("key-pa55phrase"))
	if err != nil {
		t.Fatal(err)
	}
	clientEncrypted := pem.EncodeToMemory(block)
	stranger, strangerPub := newKey(t, "")
	encrypted, _ := newKey(t, "other-pa55phrase")
	secrets := []string{keyBody(clientKey), keyBody(clientEncrypted), keyBody(encrypted), keyBody(stranger), "key-pa55phrase", "other-pa55phrase"}

	tests := []struct {
		name   string
		secret map[string][]byte
		auth   bool // fails with ErrAuth
	}{
		{"identity and known_hosts", map[string][]byte{"identity": clientKey, "known_hosts": knownHost(t, hostKey)}, false},
		{
			"known_hosts with other hosts too",
			map[string][]byte{"identity": clientKey, "known_hosts": append([]byte("example.com "+strangerPub+"\n"), knownHost(t, hostKey)...)},
			false,
		},
		{
			"encrypted identity with its passphrase",
			map[string][]byte{"identity": clientEncrypted, "known_hosts": knownHost(t, hostKey), "password": []byte("key-pa55phrase")},
			false,
		},
		{"another host key", map[string][]byte{"identity": clientKey, "known_hosts": knownHost(t, strangerPub)}, true},
		{"host unknown", map[string][]byte{"identity": clientKey, "known_hosts": []byte("example.com " + hostKey + "\n")}, true},
		{"identity the server does not accept", map[string][]byte{"identity": stranger, "known_hosts": knownHost(t, hostKey)}, true},
		{
			"encrypted identity the server does not accept",
			map[string][]byte{"identity": encrypted, "known_hosts": knownHost(t, hostKey), "password": []byte("other-pa55phrase")},
			true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rem, err := NewRemote(r.sshURL(), tt.secret)
			g.Expect(err).NotTo(HaveOccurred())
			res, err := Resolve(t.Context(), rem, Ref{})
			if tt.auth {
				t.Log(err)
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "error %q is not ErrAuth", err)
				for _, s := range secrets {
					g.Expect(err.Error()).NotTo(ContainSubstring(s))
				}
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res).To(Equal(Resolved{RefName: "refs/heads/main", Commit: c, Revision: "main@sha1:" + c}))
			_, content, err := archive(t, rem, res, false, ArchiveOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(content).To(Equal(map[string]string{"app.yaml": "f app", "run.sh": "x #!/bin/sh\n"}))
		})
	}

	t.Run("submodule by a relative URL, with the same key", func(t *testing.T) {
		g := NewWithT(t)
		lib, libCommit := publish(t, files{"lib.yaml": file("lib")})
		parent, _ := publish(t, files{"app.yaml": file("app"), ".gitmodules": gitmodules("lib", "../"+lib.name), "lib": gitlink(libCommit)})
		rem, err := NewRemote(parent.sshURL(), map[string][]byte{"identity": clientKey, "known_hosts": knownHost(t, hostKey)})
		g.Expect(err).NotTo(HaveOccurred())
		_, content, err := archive(t, rem, mustResolve(t, rem, Ref{}), false, ArchiveOptions{RecurseSubmodules: true})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(content).To(Equal(map[string]string{"app.yaml": "f app", "lib/lib.yaml": "f lib"}))
	})
}

func TestClassify(t *testing.T) {
	const raw = "https://user:hunter2-secret@git.example.com/org/r.git"
	tests := []struct {
		name string
		err  error
		auth bool
		msg  string
	}{
		{"authentication required", fmt.Errorf("%w: %s", transport.ErrAuthenticationRequired, raw), true, "authentication failed: list refs of https://redacted@git.example.com/org/r.git: authentication required"},
		{"authorization failed", transport.ErrAuthorizationFailed, true, "authorization failed"},
		{"ssh authentication", errors.New("ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey]"), true, "unable to authenticate"},
		{"known_hosts mismatch", errors.New("ssh: handshake failed: knownhosts: key mismatch"), true, "key mismatch"},
		{"host key", errors.New("ssh: handshake failed: host key fingerprint mismatch"), true, "host key"},
		{"repository not found", fmt.Errorf("%w: GET %s", transport.ErrRepositoryNotFound, raw), false, "(check the URL and that the credentials can read it)"},
		{"timeout", fmt.Errorf("dial: %w", context.DeadlineExceeded), false, "list refs of https://redacted@git.example.com/org/r.git: timed out (spec.timeout)"},
		{"other", fmt.Errorf("unexpected answer from %s: password hunter2-secret", raw), false, "list refs of https://redacted@git.example.com/org/r.git: unexpected answer from https://redacted@git.example.com/org/r.git: password redacted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := classify(raw, "list refs of", tt.err)
			g.Expect(errors.Is(err, ErrAuth)).To(Equal(tt.auth), "error %q", err)
			g.Expect(err.Error()).To(ContainSubstring(tt.msg))
			g.Expect(err.Error()).To(ContainSubstring("https://redacted@git.example.com/org/r.git"))
			g.Expect(err.Error()).NotTo(ContainSubstring("hunter2"))
		})
	}
}

// A URL that Go cannot parse fails in go-git; its password must not show in the error.
func TestUnparsableURLKeepsItsPassword(t *testing.T) {
	for _, u := range []string{"https://user:se%zzcret@127.0.0.1:1/r.git", "http://user:secret@exa mple.com/r.git"} {
		t.Run(u, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Resolve(t.Context(), Remote{URL: u}, Ref{})
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("redacted@"))
			g.Expect(err.Error()).NotTo(ContainSubstring("cret"))
			err = Archive(t.Context(), Remote{URL: u}, Resolved{RefName: "refs/heads/main", Commit: strings.Repeat("1", 40)}, false, ArchiveOptions{}, nil)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).NotTo(ContainSubstring("cret"))
		})
	}
}
