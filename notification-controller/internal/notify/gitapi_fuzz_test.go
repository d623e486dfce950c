package notify

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// A host's error answer is untrusted: whatever it holds, the message is one short line without
// the credential.
func FuzzHostMessage(f *testing.F) {
	for _, s := range []string{`{"message": "Bad credentials"}`, `{"error": {"message": "x"}}`, `{"errors": [{"message": "y"}]}`,
		`{"message": {"a": ["b"]}}`, `{"message": "tok3n\ntok3n"}`, `[1]`, `null`} {
		f.Add([]byte(s))
	}
	api := restAPI{secrets: []string{"tok3n"}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg := api.hostMessage(raw)
		if strings.Contains(msg, "tok3n") || strings.ContainsAny(msg, "\n\r") || !utf8.ValidString(msg) || utf8.RuneCountInString(msg) > 200 {
			t.Fatalf("hostMessage(%q) = %q", raw, msg)
		}
	})
}

// A Link header is untrusted: the next page is one of its targets, or nothing.
func FuzzNextPage(f *testing.F) {
	for _, s := range []string{`<https://h/x?page=2>; rel="next", <https://h/x?page=9>; rel="last"`, `<>; rel="next"`, `;;,,`, `rel="next"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, link string) {
		next := nextPage(http.Header{"Link": {link}})
		if next != "" && !strings.Contains(link, next) {
			t.Fatalf("nextPage(%q) = %q", link, next)
		}
	})
}

// A repository address comes from a Provider: the parsers never panic, and what they return is
// taken from the address.
func FuzzRepositoryAddresses(f *testing.F) {
	for _, s := range []string{"https://dev.azure.com/org/proj/_git/app", "https://bb/scm/P/r.git", "https://bb/projects/P/repos/r",
		"https://g/o/r", "http://[::1]:80/a/b", "https://x/_git/_git/_git"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, address string) {
		if _, _, err := azureDevOpsRepo(address); err == nil && !strings.Contains(address, "_git") {
			t.Fatalf("azureDevOpsRepo(%q) took an address without _git", address)
		}
		if _, project, slug, err := bitbucketServerRepo(address); err == nil && (project == "" || slug == "") {
			t.Fatalf("bitbucketServerRepo(%q) gave an empty project or slug", address)
		}
		if _, owner, repo, err := ownerRepo("gitea", address); err == nil && (owner == "" || repo == "") {
			t.Fatalf("ownerRepo(%q) gave an empty owner or repository", address)
		}
		if s := clip(address, 10); utf8.ValidString(address) && (!utf8.ValidString(s) || utf8.RuneCountInString(s) > 10) {
			t.Fatalf("clip(%q) = %q", address, s)
		}
	})
}
