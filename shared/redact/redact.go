// Package redact keeps the values a controller read from Secrets out of what it publishes:
// condition messages, events, logs, and digests in status.
package redact

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Mask stands in for a secret value.
const Mask = "<redacted>"

// minLen is the shortest value masked in messages: shorter ones are too common in ordinary
// text (a "1" would mask every count) and reveal little. A value of 1 to 3 bytes is masked in
// no form; one of minLen or more is masked in every form encodings lists.
const minLen = 4

// minFragment is the shortest line of a multi-line value that is masked on its own (after
// trimming its spaces): a line such as "}" or "---" would mask innocent text everywhere.
const minFragment = 8

// String returns s with every secret value of minLen or more bytes replaced by Mask, in each
// form an error message can carry it (see encodings).
// Overlapping or adjacent forms become one Mask, so that masking one form never leaves part of
// another, nor puts a secret together again from the text around a mask.
func String(s string, secrets []string) string {
	fs := forms(secrets)
	if len(fs) == 0 {
		return s
	}
	covered := make([]bool, len(s))
	found := false
	for _, f := range fs {
		for i := 0; i <= len(s)-len(f); {
			j := strings.Index(s[i:], f)
			if j < 0 {
				break
			}
			for k := i + j; k < i+j+len(f); k++ {
				covered[k] = true
			}
			found = true
			i += j + 1
		}
	}
	if !found {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case !covered[i]:
			b.WriteByte(s[i])
		case i == 0 || !covered[i-1]:
			b.WriteString(Mask)
		}
	}
	return b.String()
}

// forms lists the encodings of every secret, each once.
func forms(secrets []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range secrets {
		for _, e := range encodings(v) {
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// encodings are the forms a value takes in the error messages of the API server, of Go and of
// the libraries we call: raw, and without its surrounding spaces; quoted by Go (%q, %+q) and by JSON, with and without the quotes,
// as the API server quotes an invalid value; YAML single-quoted and plain; lines joined with
// spaces (YAML folding); URL-escaped (query and path); base64 (standard and URL, padded or
// not); and, for a multi-line value, each line of minFragment or more bytes in the same quoted
// forms, since a message may show one line of it. Nothing for values shorter than minLen.
func encodings(v string) []string {
	if len(v) < minLen {
		return nil
	}
	var out []string
	add := func(s string) {
		if len(s) >= minLen {
			out = append(out, s)
		}
	}
	quoted(add, v)
	if t := strings.TrimSpace(v); t != v {
		quoted(add, t) // a value read from a file often ends with a newline that messages drop
	}
	add(url.QueryEscape(v))
	add(url.PathEscape(v))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		add(enc.EncodeToString([]byte(v)))
	}
	if strings.ContainsAny(v, "\r\n") {
		lines := strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' })
		for i, line := range lines {
			lines[i] = strings.TrimSpace(line)
			if len(lines[i]) >= minFragment {
				quoted(add, lines[i])
			}
		}
		quoted(add, strings.Join(lines, " "))
	}
	return out
}

// quoted adds s and its quoted forms, each also without its surrounding quotes.
func quoted(add func(string), s string) {
	add(s)
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	html, _ := json.Marshal(s)
	for _, q := range []string{strconv.Quote(s), strconv.QuoteToASCII(s), string(html), strings.TrimSuffix(plain.String(), "\n")} {
		add(q)
		add(q[1 : len(q)-1])
	}
	add("'" + strings.ReplaceAll(s, "'", "''") + "'")
	add(strings.ReplaceAll(s, "'", "''"))
	if y, err := yaml.Marshal(s); err == nil {
		add(strings.TrimSuffix(string(y), "\n"))
	}
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
