// Package redact keeps the values a controller read from Secrets out of what it publishes:
// condition messages, events, logs, and digests in status.
package redact

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask stands in for a secret value.
const Mask = "<redacted>"

// minLen is the shortest value masked in messages: shorter ones are too common in ordinary
// text (a "1" would mask every count) and reveal little.
const minLen = 4

// String returns s with every secret value of minLen or more characters replaced by Mask.
func String(s string, secrets []string) string {
	for _, v := range longestFirst(secrets) {
		if len(v) >= minLen {
			s = strings.ReplaceAll(s, v, Mask)
		}
	}
	return s
}

// Error returns err with its message masked as String does; err itself when nothing changed.
func Error(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if m := String(msg, secrets); m != msg {
		return errors.New(m)
	}
	return err
}

// Digest is "sha256:<hex>" of data with every secret value (of any length) masked, followed by
// versions: what identifies the secrets' content without revealing it, such as the resource
// versions of the Secrets read. It is the same in every process, so it can be compared across
// restarts, and nobody who reads it can test guesses of a secret against it.
func Digest(data []byte, secrets []string, versions ...string) string {
	masked := string(data)
	for _, v := range longestFirst(secrets) {
		if v != "" {
			masked = strings.ReplaceAll(masked, v, Mask)
		}
	}
	h := sha256.New()
	h.Write([]byte(masked))
	for _, v := range versions {
		h.Write([]byte{0})
		h.Write([]byte(v))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// longestFirst orders values so that a value containing another is masked whole.
func longestFirst(secrets []string) []string {
	out := slices.Clone(secrets)
	slices.SortFunc(out, func(a, b string) int {
		if c := cmp.Compare(len(b), len(a)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

// keptQuery are the query parameters a URL keeps in messages: they say what is fetched
// (kustomize's and go-getter's), where other values may be tokens or signatures.
var keptQuery = map[string]bool{"ref": true, "version": true, "timeout": true, "submodules": true, "depth": true}

// URL returns a URL fit for messages: its user information becomes "redacted" (the plain SSH
// user git stays), and so do its query values but those naming what is fetched (ref, version,
// ...). Text that Go does not parse as a URL has its user information masked all the same.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Userinfo(raw)
	}
	changed := false
	if u.User != nil {
		if _, hasPassword := u.User.Password(); u.User.Username() != "git" || hasPassword {
			u.User, changed = url.User("redacted"), true
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if !keptQuery[k] {
				for i := range vs {
					vs[i] = "redacted"
				}
				changed = true
			}
		}
		u.RawQuery = q.Encode()
	}
	if !changed {
		return raw
	}
	return u.String()
}

var userinfo = regexp.MustCompile(`://[^/@\s]+@`)

// Userinfo masks the user information of every URL in free text (the plain SSH user git
// stays).
func Userinfo(s string) string {
	return userinfo.ReplaceAllStringFunc(s, func(m string) string {
		if m == "://git@" {
			return m
		}
		return "://redacted@"
	})
}

// Credentials masks in free text, such as a library's error, the password and user name of
// rawURL wherever they appear on their own, and the user information of every URL.
func Credentials(s, rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, "redacted")
		}
		if n := u.User.Username(); len(n) >= minLen && n != "git" {
			s = strings.ReplaceAll(s, n, "redacted")
		}
	}
	return Userinfo(s)
}
