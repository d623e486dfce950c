package release

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/redact"
)

// Merge merges src into dst, src winning: nested maps merge key by key, anything else in src
// replaces what dst has. dst is changed and returned.
func Merge(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = Merge(dm, sm)
				continue
			}
			dst[k] = Merge(map[string]any{}, sm)
			continue
		}
		dst[k] = v
	}
	return dst
}

// ParseValues reads a YAML (or JSON) document of values; empty is no values.
func ParseValues(data []byte) (map[string]any, error) {
	out := map[string]any{}
	if len(strings.TrimSpace(string(data))) == 0 {
		return out, nil
	}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

// SetPath puts value (a string, as it is) at a dotted path of vals, creating maps on the way;
// a dot escaped as \. belongs to the key.
func SetPath(vals map[string]any, path, value string) error {
	keys := splitPath(path)
	if len(keys) == 0 {
		return fmt.Errorf("targetPath %q is empty", path)
	}
	m := vals
	for _, k := range keys[:len(keys)-1] {
		if k == "" {
			return fmt.Errorf("targetPath %q has an empty key", path)
		}
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	last := keys[len(keys)-1]
	if last == "" {
		return fmt.Errorf("targetPath %q has an empty key", path)
	}
	m[last] = value
	return nil
}

func splitPath(p string) []string {
	var keys []string
	var cur strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p) && p[i+1] == '.':
			cur.WriteByte('.')
			i++
		case p[i] == '.':
			keys = append(keys, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(p[i])
		}
	}
	if p != "" {
		keys = append(keys, cur.String())
	}
	return keys
}

// Digest identifies values within this process, to compare a release's values with the
// wanted ones: a plain sha256 of their JSON with sorted keys. Never publish it (values may hold
// secrets); MaskedDigest is the one for status.
func Digest(vals map[string]any) string {
	sum := sha256.Sum256(valuesJSON(vals))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// MaskedDigest identifies values in status: shared/redact.Digest of their JSON, with the values
// read from Secrets masked and the Secrets' versions added.
func MaskedDigest(vals map[string]any, secrets, versions []string) string {
	return redact.Digest(valuesJSON(vals), secrets, versions...)
}

func valuesJSON(vals map[string]any) []byte {
	if vals == nil {
		vals = map[string]any{}
	}
	b, err := json.Marshal(vals)
	if err != nil { // values come from JSON and YAML: always marshal
		b = []byte(fmt.Sprint(vals))
	}
	return b
}

// DigestLabel packs a "sha256:<hex>" digest into a label value (labels hold at most 63
// characters: the 32 bytes go as unpadded base64url); LabelDigest unpacks it, "" when the label
// is not one.
func DigestLabel(digest string) string {
	b, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// LabelDigest is DigestLabel's inverse.
func LabelDigest(label string) string {
	b, err := base64.RawURLEncoding.DecodeString(label)
	if err != nil || len(b) != sha256.Size {
		return ""
	}
	return "sha256:" + hex.EncodeToString(b)
}
