package receiver

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strings"
	"testing"
)

func sign(h func() hash.Hash, key string, body []byte) string {
	m := hmac.New(h, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestVerify(t *testing.T) {
	const token = "t0ken-of-the-hook"
	body := []byte(`{"ref":"refs/heads/main"}`)
	good256 := "sha256=" + sign(sha256.New, token, body)
	cases := []struct {
		name, kind string
		events     []string
		call       Call
		trigger    bool
		err        error
	}{
		{"generic", "generic", nil, Call{Body: body}, true, nil},
		{"generic-hmac sha256", "generic-hmac", nil, Call{Header: header("X-Signature", good256), Body: body}, true, nil},
		{"generic-hmac sha1", "generic-hmac", nil, Call{Header: header("X-Signature", "sha1="+sign(sha1.New, token, body)), Body: body}, true, nil},
		{"generic-hmac wrong key", "generic-hmac", nil, Call{Header: header("X-Signature", "sha256="+sign(sha256.New, "other", body)), Body: body}, false, ErrUnauthorized},
		{"generic-hmac no signature", "generic-hmac", nil, Call{Header: header(), Body: body}, false, ErrUnauthorized},
		{"generic-hmac md5 refused", "generic-hmac", nil, Call{Header: header("X-Signature", "md5=00"), Body: body}, false, ErrUnauthorized},
		{"github push", "github", []string{"push"}, Call{Header: header("X-Hub-Signature-256", good256, "X-GitHub-Event", "push"), Body: body}, true, nil},
		{"github ping", "github", nil, Call{Header: header("X-Hub-Signature-256", good256, "X-GitHub-Event", "ping"), Body: body}, false, nil},
		{"github event filtered out", "github", []string{"push"}, Call{Header: header("X-Hub-Signature-256", good256, "X-GitHub-Event", "issues"), Body: body}, false, nil},
		{"github body changed", "github", nil, Call{Header: header("X-Hub-Signature-256", good256, "X-GitHub-Event", "push"), Body: []byte(`{"ref":"x"}`)}, false, ErrUnauthorized},
		{"gitlab", "gitlab", []string{"Push Hook"}, Call{Header: header("X-Gitlab-Token", token, "X-Gitlab-Event", "Push Hook"), Body: body}, true, nil},
		{"gitlab wrong token", "gitlab", nil, Call{Header: header("X-Gitlab-Token", "nope"), Body: body}, false, ErrUnauthorized},
		{"gitea", "gitea", nil, Call{Header: header("X-Gitea-Signature", sign(sha256.New, token, body), "X-Gitea-Event", "push"), Body: body}, true, nil},
		{"gitea wrong", "gitea", nil, Call{Header: header("X-Gitea-Signature", "00ff"), Body: body}, false, ErrUnauthorized},
		{"bitbucket", "bitbucket", []string{"repo:refs_changed"}, Call{Header: header("X-Hub-Signature", good256, "X-Event-Key", "repo:refs_changed"), Body: body}, true, nil},
		{"bitbucket ping", "bitbucket", nil, Call{Header: header("X-Event-Key", "diagnostics:ping"), Body: body}, false, nil},
		{"harbor", "harbor", nil, Call{Header: header("Authorization", token), Body: []byte(`{"type":"PUSH_ARTIFACT","event_data":{}}`)}, true, nil},
		{"harbor wrong", "harbor", nil, Call{Header: header("Authorization", "Bearer x"), Body: []byte(`{"type":"PUSH_ARTIFACT"}`)}, false, ErrUnauthorized},
		{"harbor malformed", "harbor", nil, Call{Header: header("Authorization", token), Body: []byte(`{`)}, false, ErrBadRequest},
		{"dockerhub", "dockerhub", nil, Call{Body: []byte(`{"push_data":{"tag":"1.0"},"repository":{"repo_name":"team/app"}}`)}, true, nil},
		{"dockerhub malformed", "dockerhub", nil, Call{Body: []byte(`{"repository":{}}`)}, false, ErrBadRequest},
		{"quay", "quay", nil, Call{Body: []byte(`{"docker_url":"quay.io/team/app","updated_tags":["1.0"]}`)}, true, nil},
		{"quay malformed", "quay", nil, Call{Body: []byte(`[]`)}, false, ErrBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.call.Header == nil {
				c.call.Header = http.Header{}
			}
			res, err := Verify(c.kind, token, c.events, c.call)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Verify = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || res.Trigger != c.trigger {
				t.Fatalf("Verify = %+v, %v; want trigger %v", res, err, c.trigger)
			}
		})
	}
	p := Path("a", "b", "c")
	if !strings.HasPrefix(p, "/hook/") || len(p) != len("/hook/")+64 {
		t.Errorf("Path = %q, want /hook/<64 hex>", p)
	}
	for _, other := range []string{Path("x", "b", "c"), Path("a", "x", "c"), Path("a", "b", "x")} {
		if other == p {
			t.Error("Path does not depend on each of token, name and namespace")
		}
	}
}

// Any headers and body: no panic, and nothing signed with another key passes.
func FuzzVerify(f *testing.F) {
	f.Add("github", "sha256=00", "push", []byte(`{}`))
	f.Add("generic-hmac", "sha1=abcd", "", []byte("x"))
	f.Add("dockerhub", "", "", []byte(`{"push_data":{},"repository":{"repo_name":"a"}}`))
	f.Add("gitea", "zz", "push", []byte{0xff})
	f.Fuzz(func(t *testing.T, kind, sig, event string, body []byte) {
		h := header("X-Hub-Signature-256", sig, "X-Signature", sig, "X-Gitea-Signature", sig, "X-Hub-Signature", sig,
			"X-GitHub-Event", event, "X-Event-Key", event)
		res, err := Verify(kind, "the-real-token", nil, Call{Header: h, Body: body})
		if err != nil || !res.Trigger {
			return
		}
		switch kind {
		case "generic-hmac", "github", "gitea":
			// Passing means sig is the body's HMAC with the real token: check it.
			want := sign(sha256.New, "the-real-token", body)
			if sig != "sha256="+want && sig != want && len(sig) < 40 {
				t.Fatalf("%s call with signature %q passed", kind, sig)
			}
		case "gitlab", "harbor":
			t.Fatalf("%s call without the token passed", kind)
		}
	})
}
