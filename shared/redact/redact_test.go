package redact

import (
	"errors"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	cases := []struct {
		name, in string
		secrets  []string
		want     string
	}{
		{"no secrets", "password is hunter2", nil, "password is hunter2"},
		{"masked", "password is hunter2", []string{"hunter2"}, "password is " + Mask},
		{"every occurrence", "a=hunter2 b=hunter2", []string{"hunter2"}, "a=" + Mask + " b=" + Mask},
		{"short values stay", "replicas: 1", []string{"1"}, "replicas: 1"},
		{"longer value first", "token abcdefgh", []string{"abcd", "abcdefgh"}, "token " + Mask},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := String(tc.in, tc.secrets); got != tc.want {
				t.Errorf("String = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestError(t *testing.T) {
	orig := errors.New("template failed: value hunter2 does not match")
	if got := Error(orig, []string{"hunter2"}); strings.Contains(got.Error(), "hunter2") {
		t.Errorf("secret left in %q", got)
	}
	if got := Error(orig, []string{"other-value"}); got != orig {
		t.Error("an error without secrets was replaced")
	}
	if Error(nil, []string{"x"}) != nil {
		t.Error("nil error became non-nil")
	}
}

func TestDigest(t *testing.T) {
	data := []byte("password: s3cr\nreplicas: 2\n")
	d := Digest(data, []string{"s3cr"}, "rv1")
	if d != Digest(data, []string{"s3cr"}, "rv1") {
		t.Error("digest not stable")
	}
	// Guessing: the digest of the same text with another secret is the same, so a guess cannot
	// be confirmed; the version stands for the secret's content.
	if d != Digest([]byte("password: 1234\nreplicas: 2\n"), []string{"1234"}, "rv1") {
		t.Error("digest depends on the secret value")
	}
	if d == Digest(data, []string{"s3cr"}, "rv2") {
		t.Error("digest ignores the versions")
	}
	if d == Digest([]byte("password: s3cr\nreplicas: 3\n"), []string{"s3cr"}, "rv1") {
		t.Error("digest ignores the rest of the data")
	}
	if !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
		t.Errorf("digest format %q", d)
	}
}

func FuzzString(f *testing.F) {
	f.Add("password hunter2 here", "hunter2", "hunt")
	f.Fuzz(func(t *testing.T, s, a, b string) {
		got := String(s, []string{a, b})
		for _, v := range []string{a, b} {
			if len(v) >= minLen && !strings.Contains(Mask, v) && strings.Contains(got, v) {
				// A value may be rebuilt across a mask's edges only if it overlaps the mask's text.
				if !strings.ContainsAny(v, "<>redacted") {
					t.Errorf("String(%q) = %q still holds %q", s, got, v)
				}
			}
		}
	})
}

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:secret@example.com/r.git", "https://redacted@example.com/r.git"},
		{"http://user:se%2Fcr%40et@example.com:8080/r.git?ref=v1", "http://redacted@example.com:8080/r.git?ref=v1"},
		{"https://user:p@ss@example.com/r.git", "https://redacted@example.com/r.git"},
		{"https://user:@example.com/r.git", "https://redacted@example.com/r.git"},
		{"ssh://git:secret@example.com:22/r.git", "ssh://redacted@example.com:22/r.git"},
		{"https://token@example.com/r.git", "https://redacted@example.com/r.git"},
		{"https://example.com/r.git", "https://example.com/r.git"},
		{"ssh://git@example.com/r.git", "ssh://git@example.com/r.git"},
		{"git@example.com:org/r.git", "git@example.com:org/r.git"},
		{"", ""},
		{"https://charts.example.com/web-1.0.0.tgz?X-Amz-Signature=abc&version=1", "https://charts.example.com/web-1.0.0.tgz?X-Amz-Signature=redacted&version=1"},
		// Not a URL Go parses: the credentials go all the same.
		{"https://user:se%zzcret@example.com/r.git", "https://redacted@example.com/r.git"},
		{"https://user:secret@exa mple.com/r.git", "https://redacted@exa mple.com/r.git"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	tests := []struct {
		name, text, url, want string
	}{
		{"URL in the text", "GET https://u:s3cret@h/r.git: 500", "https://u:s3cret@h/r.git", "GET https://redacted@h/r.git: 500"},
		{"password alone", "server said: bad password s3cret, twice: s3cret", "https://u:s3cret@h/r.git", "server said: bad password redacted, twice: redacted"},
		{"password with @", "fetch https://u:p@ss@h/r.git failed", "https://u:p@ss@h/r.git", "fetch https://redacted@h/r.git failed"},
		{"escaped password", "fetch https://u:p%40ss@h/r.git failed", "https://u:p%40ss@h/r.git", "fetch https://redacted@h/r.git failed"},
		{"credentials of another URL", "redirected to http://a:b@other/x", "https://h/r.git", "redirected to http://redacted@other/x"},
		{"several URLs", "ssh://x:y@a and https://z:w@b/", "", "ssh://redacted@a and https://redacted@b/"},
		{"user without password", "fetch https://token@h/r.git failed", "https://token@h/r.git", "fetch https://redacted@h/r.git failed"},
		{"nothing to redact", "connection refused", "https://h/r.git", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Credentials(tt.text, tt.url); got != tt.want {
				t.Errorf("Credentials = %q, want %q", got, tt.want)
			}
		})
	}
}
