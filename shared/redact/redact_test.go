package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
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

// embeddings are the ways the messages of the API server, Go and the libraries we call carry
// a value; written apart from encodings, so that the test does not check the code with itself.
var embeddings = map[string]func(string) string{
	"raw":            func(v string) string { return v },
	"go quoted":      strconv.Quote,
	"go quoted bare": func(v string) string { q := strconv.Quote(v); return q[1 : len(q)-1] },
	"go ascii":       strconv.QuoteToASCII,
	"json":           func(v string) string { b, _ := json.Marshal(v); return string(b) },
	"json bare":      func(v string) string { b, _ := json.Marshal(v); return string(b[1 : len(b)-1]) },
	"json no html": func(v string) string {
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		_ = e.Encode(v)
		return strings.TrimSpace(b.String())
	},
	"yaml":          func(v string) string { b, _ := yaml.Marshal(v); return string(b) },
	"yaml single":   func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" },
	"yaml folded":   folded,
	"query escaped": url.QueryEscape,
	"path escaped":  url.PathEscape,
	"base64":        func(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) },
	"base64 url":    func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) },
	"one line":      func(v string) string { return longestLine(v) },
	"one line quoted": func(v string) string {
		q := strconv.Quote(longestLine(v))
		return q[1 : len(q)-1]
	},
}

// longestLine is the longest line of v, without its surrounding spaces.
func longestLine(v string) string {
	best := ""
	for _, l := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); len(l) > len(best) {
			best = l
		}
	}
	return best
}

// folded joins the lines of v, without their surrounding spaces, with one space.
func folded(v string) string {
	lines := strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}

// leaks returns what of v's embeddings is left in out, outside the masks. A line counts only
// from minFragment bytes, the folded form from minLen.
func leaks(out, v string) []string {
	if len(v) < minLen {
		return nil
	}
	var found []string
	for _, piece := range strings.Split(out, Mask) {
		for name, embed := range embeddings {
			e := embed(v)
			switch {
			case strings.HasPrefix(name, "one line") && len(longestLine(v)) < minFragment:
				continue
			case name == "yaml folded" && len(e) < minLen:
				continue
			case name == "yaml" && strings.ContainsAny(v, "\n\r"):
				continue // a block: its lines are checked as lines
			}
			e = strings.TrimSuffix(e, "\n")
			if e != "" && strings.Contains(piece, e) {
				found = append(found, name+": "+e)
			}
		}
	}
	return found
}

// values are secrets of every shape: quotes, backslashes, newlines, tabs, unicode, very long,
// very short.
var values = []string{
	"hunter2", `Quo"ted`, "Quo\"ted\nsecond line here", `back\slash`, "tab\tbed", "s3cr\u00e9t-\u65e5\u672c",
	"<html>&amp;", "100% sure?", "a b c d e f", "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n",
	"  indented\n    value with  spaces  \n", "it's", "x", "ab", "abc", "abcd", "\x01\x02\x7f\xff",
	"\n\n\n\n", "line\r\nwindows line\r\n", strings.Repeat("long-secret-", 500),
}

func TestStringMasksEveryEmbedding(t *testing.T) {
	for _, v := range values {
		for name, embed := range embeddings {
			msg := `spec.data: Invalid value: ` + embed(v) + `: must be no more than 63 characters`
			out := String(msg, []string{v})
			if l := leaks(out, v); len(l) > 0 {
				t.Errorf("%s of %q: %q leaks %q", name, v, out, l)
			}
		}
	}
}

func TestShortValuesStay(t *testing.T) {
	msg := `replicas: 1, name "ab", path abc, mode "a\"b"`
	for _, v := range []string{"1", "ab", "abc", `a"b`, "\n", ""} {
		if got := String(msg, []string{v}); got != msg {
			t.Errorf("value %q changed %q to %q", v, msg, got)
		}
	}
	// A short line of a long value is not masked on its own.
	if got := String("a brace } here", []string{"{\n}\nsecret-line"}); got != "a brace } here" {
		t.Errorf("a short line was masked: %q", got)
	}
}

func FuzzString(f *testing.F) {
	f.Add("password hunter2 here", "hunter2", "hunt", uint8(0))
	f.Add("error: ", "Quo\"ted\nsecond line here", "ab", uint8(1))
	f.Add("", "-----BEGIN-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n", "x", uint8(14))
	names := make([]string, 0, len(embeddings))
	for n := range embeddings {
		names = append(names, n)
	}
	sort.Strings(names)
	f.Fuzz(func(t *testing.T, s, a, b string, pick uint8) {
		// s with a embedded as one of the embeddings, in the middle.
		msg := s[:len(s)/2] + embeddings[names[int(pick)%len(names)]](a) + s[len(s)/2:]
		got := String(msg, []string{a, b})
		for _, v := range []string{a, b} {
			if l := leaks(got, v); len(l) > 0 {
				t.Errorf("String(%q) = %q leaks %q", msg, got, l)
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
