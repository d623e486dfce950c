package gitauth

import (
	"errors"
	"os"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/testing/sshtest"
)

// keyBody is a line from the middle of a PEM key: what would show if the key leaked.
func keyBody(pemKey []byte) string {
	lines := strings.Split(strings.TrimSpace(string(pemKey)), "\n")
	return lines[len(lines)/2]
}

func TestNewRemote(t *testing.T) {
	identity, _ := sshtest.NewKey(t, "")
	encrypted, _ := sshtest.NewKey(t, "key-pa55phrase")
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
