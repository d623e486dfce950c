package git

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/plumb-dev/plumb/shared/testing/sshtest"
)

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

// NewRemote's errors are of this package's kinds, which callers map to reasons: the sentinels are
// shared/gitauth's (which tests what the Secret's keys give).
func TestNewRemoteErrorKinds(t *testing.T) {
	g := NewWithT(t)
	_, err := NewRemote("ssh://git@example.com/r.git", nil)
	g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "%v", err)
	_, err = NewRemote("ftp://example.com/r.git", nil)
	g.Expect(errors.Is(err, ErrInvalid)).To(BeTrue(), "%v", err)
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
	stranger, strangerPub := sshtest.NewKey(t, "")
	encrypted, _ := sshtest.NewKey(t, "other-pa55phrase")
	secrets := []string{keyBody(clientKey), keyBody(clientEncrypted), keyBody(encrypted), keyBody(stranger), "key-pa55phrase", "other-pa55phrase"}

	tests := []struct {
		name   string
		secret map[string][]byte
		auth   bool   // fails with ErrAuth
		msg    string // part of the error message, when auth
	}{
		{"identity and known_hosts", map[string][]byte{"identity": clientKey, "known_hosts": knownHost(t, hostKey)}, false, ""},
		{
			"known_hosts with other hosts too",
			map[string][]byte{"identity": clientKey, "known_hosts": append([]byte("example.com "+strangerPub+"\n"), knownHost(t, hostKey)...)},
			false, "",
		},
		{
			"encrypted identity with its passphrase",
			map[string][]byte{"identity": clientEncrypted, "known_hosts": knownHost(t, hostKey), "password": []byte("key-pa55phrase")},
			false, "",
		},
		{"another host key", map[string][]byte{"identity": clientKey, "known_hosts": knownHost(t, strangerPub)}, true, "key mismatch"},
		{"host unknown", map[string][]byte{"identity": clientKey, "known_hosts": []byte("example.com " + hostKey + "\n")}, true, ""},
		{"identity the server does not accept", map[string][]byte{"identity": stranger, "known_hosts": knownHost(t, hostKey)}, true, "unable to authenticate"},
		{
			"encrypted identity the server does not accept",
			map[string][]byte{"identity": encrypted, "known_hosts": knownHost(t, hostKey), "password": []byte("other-pa55phrase")},
			true, "unable to authenticate",
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
				g.Expect(err.Error()).To(ContainSubstring(tt.msg))
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
		{"deadline of the transport", fmt.Errorf("Get %q: net/http: timeout awaiting response headers: %w", raw, context.DeadlineExceeded), false, "list refs of https://redacted@git.example.com/org/r.git: the host did not answer in time: "},
		{"other", fmt.Errorf("unexpected answer from %s: password hunter2-secret", raw), false, "list refs of https://redacted@git.example.com/org/r.git: unexpected answer from https://redacted@git.example.com/org/r.git: password redacted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			if tt.name == "timeout" { // spec.timeout ended the operation
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, time.Now())
				defer cancel()
			}
			err := classify(ctx, raw, "list refs of", tt.err)
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
			_, err = Archive(t.Context(), Remote{URL: u}, Resolved{RefName: "refs/heads/main", Commit: strings.Repeat("1", 40)}, false, ArchiveOptions{}, nil)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).NotTo(ContainSubstring("cret"))
		})
	}
}
