// Package redact keeps the values a controller read from Secrets out of what it publishes:
// condition messages, events, logs, and digests in status.
package redact

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
