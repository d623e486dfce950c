package gitauth

import (
	"errors"
	"testing"
)

// A credentials Secret is written by users: any URL and content give a Remote for the URL, or an
// error of the package's kinds.
func FuzzNewRemote(f *testing.F) {
	knownHosts := "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
	f.Add("https://example.com/r.git", "u", "p", "", "", "")
	f.Add("http://example.com/r.git", "", "", "t0ken", "", "")
	f.Add("ssh://deploy@example.com:2222/r.git", "", "", "", "-----BEGIN OPENSSH PRIVATE KEY-----\n", knownHosts)
	f.Add("git@example.com:org/r.git", "", "phrase", "", "not a key", "example.com ssh-ed25519 !!!\n")
	f.Add("file:///tmp/r.git", "", "", "", "", "")
	f.Add("%zz://x", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, rawURL, username, password, token, identity, hosts string) {
		secret := map[string][]byte{"username": []byte(username), "password": []byte(password),
			"bearerToken": []byte(token), "identity": []byte(identity), "known_hosts": []byte(hosts)}
		r, err := NewRemote(rawURL, secret)
		if err != nil {
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q is neither ErrAuth nor ErrInvalid", err)
			}
			return
		}
		if r.URL != rawURL {
			t.Fatalf("URL %q, want %q", r.URL, rawURL)
		}
	})
}
