package kustomize

import (
	"fmt"
	"strings"
)

// Substitute replaces ${name} with vars[name] and ${name:=default} with vars[name] or, when name
// is not set, the default. A name not set and without default becomes the empty string. $${...}
// stays as the literal ${...}. Names are letters, digits and underscores, not starting with a
// digit; anything else after "${" is an error naming it.
func Substitute(s string, vars map[string]string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", fmt.Errorf("variable reference %q has no closing brace", clip(s[i:]))
		}
		expr := s[i+2 : i+2+end]
		name, def, hasDefault := strings.Cut(expr, ":=")
		if !validName(name) {
			return "", fmt.Errorf("variable reference ${%s}: %q is not a variable name", clip(expr), clip(name))
		}
		if v, ok := vars[name]; ok {
			b.WriteString(v)
		} else if hasDefault {
			b.WriteString(def)
		}
		i += 2 + end + 1
	}
	return b.String(), nil
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for i, c := range n {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
