package receiver

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// Payloads as their hosts document them.
var (
	// Nexus Repository 3, a repository asset webhook (rm:repository:asset); Nexus signs it
	// without whitespace.
	nexusAsset = []byte(`{"timestamp":"2016-11-10T23:57:49.664+0000","nodeId":"52905B51-085CCABB-CEBBEAAD-16795588-FC927D93","initiator":"admin/127.0.0.1","repositoryName":"npm-proxy","action":"CREATED","asset":{"id":"31c950c8eeeab78336308177ae9c441c","assetId":"bnBtLXByb3h5OjMxYzk1MGM4ZWVlYWI3ODMzNjMwODE3N2FlOWM0NDFj","format":"npm","name":"concrete"}}`)
	nexusAudit = []byte(`{"nodeId":"7FFA7361-6ED33978-36997BD4-47095CC4-331356BE","initiator":"admin/127.0.0.1","audit":{"domain":"security.user","type":"created","context":"testuser","attributes":{"id":"testuser"}}}`)
	// Azure Container Registry, a push.
	acrPush = []byte(`{"id":"cb8c3971-9adc-488b-bdd8-43cbb4974ff5","timestamp":"2017-11-17T16:52:01.343145347Z","action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":524,"digest":"sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d","length":524,"repository":"hello-world","tag":"v1"},"request":{"id":"3cbb6949-7549-4fa1-86cd-a6d5451dffc7","host":"myregistry.azurecr.io","method":"PUT","useragent":"docker/17.09.0-ce go/go1.8.3 git-commit/afdb6d4 kernel/4.10.0-27-generic os/Linux arch/amd64"}}`)
	// CDEvents spec v0.4, change merged.
	cdChangeMerged = []byte(`{"context":{"version":"0.4.1","id":"271069a8-fc18-44f1-b38f-9d70a1695819","source":"/event/source/123","type":"dev.cdevents.change.merged.0.2.0","timestamp":"2023-03-20T14:27:05.315384Z"},"subject":{"id":"mySubject123","source":"/event/source/123","type":"change","content":{"repository":{"id":"cdevents/service","source":"https://github.com"}}}}`)
)

func indent(b []byte) []byte {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		panic(err)
	}
	return out.Bytes()
}

// structured wraps a CDEvent in a structured-mode CloudEvent.
func structured(cdevent []byte) []byte {
	return []byte(`{"specversion":"1.0","id":"1","source":"/event/source/123","type":"dev.cdevents.change.merged.0.2.0","datacontenttype":"application/json","data":` + string(cdevent) + `}`)
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
		{"generic ignores events", "generic", []string{"push"}, Call{Body: body}, true, nil},
		{"nexus", "nexus", []string{"created"}, Call{Header: header("X-Nexus-Webhook-Signature", sign(sha1.New, token, nexusAsset), "X-Nexus-Webhook-Id", "rm:repository:asset"), Body: nexusAsset}, true, nil},
		{"nexus indented body", "nexus", nil, Call{Header: header("X-Nexus-Webhook-Signature", sign(sha1.New, token, nexusAsset)), Body: indent(nexusAsset)}, true, nil},
		{"nexus event filtered out", "nexus", []string{"DELETED"}, Call{Header: header("X-Nexus-Webhook-Signature", sign(sha1.New, token, nexusAsset)), Body: nexusAsset}, false, nil},
		{"nexus sha256 refused", "nexus", nil, Call{Header: header("X-Nexus-Webhook-Signature", sign(sha256.New, token, nexusAsset)), Body: nexusAsset}, false, ErrUnauthorized},
		{"nexus unsigned", "nexus", nil, Call{Header: header(), Body: nexusAsset}, false, ErrUnauthorized},
		{"nexus audit event", "nexus", nil, Call{Header: header("X-Nexus-Webhook-Signature", sign(sha1.New, token, nexusAudit)), Body: nexusAudit}, false, ErrBadRequest},
		{"acr push", "acr", []string{"push"}, Call{Body: acrPush}, true, nil},
		{"acr delete filtered out", "acr", []string{"push"}, Call{Body: []byte(`{"action":"delete","target":{"repository":"hello-world"}}`)}, false, nil},
		{"acr ping", "acr", nil, Call{Body: []byte(`{"id":"1","timestamp":"2024-01-01T00:00:00Z","action":"ping"}`)}, false, nil},
		{"acr without target", "acr", nil, Call{Body: []byte(`{"action":"push"}`)}, false, ErrBadRequest},
		{"acr not JSON", "acr", nil, Call{Body: []byte(`push`)}, false, ErrBadRequest},
		{"cdevents", "cdevents", []string{"dev.cdevents.change.merged.0.2.0"}, Call{Header: header("Ce-Type", "dev.cdevents.change.merged.0.2.0", "Ce-Specversion", "1.0"), Body: cdChangeMerged}, true, nil},
		{"cdevents any version", "cdevents", []string{"dev.cdevents.change.merged"}, Call{Header: header("Ce-Type", "dev.cdevents.change.merged.0.2.0"), Body: cdChangeMerged}, true, nil},
		{"cdevents type from the body", "cdevents", []string{"dev.cdevents.change.merged"}, Call{Header: header(), Body: cdChangeMerged}, true, nil},
		{"cdevents other type", "cdevents", []string{"dev.cdevents.environment.modified"}, Call{Header: header("Ce-Type", "dev.cdevents.change.merged.0.2.0"), Body: cdChangeMerged}, false, nil},
		{"cdevents Flux's ce-type", "cdevents", []string{"cd.change.merged.v1"}, Call{Header: header("Ce-Type", "cd.change.merged.v1"), Body: cdChangeMerged}, true, nil},
		{"cdevents structured", "cdevents", []string{"dev.cdevents.change.merged"}, Call{Header: header("Content-Type", "application/cloudevents+json"), Body: structured(cdChangeMerged)}, true, nil},
		{"cdevents without subject", "cdevents", nil, Call{Header: header("Ce-Type", "dev.cdevents.change.merged.0.2.0"), Body: []byte(`{"context":{"version":"0.4.1","id":"1","source":"/s","type":"dev.cdevents.change.merged.0.2.0","timestamp":"2023-03-20T14:27:05Z"}}`)}, false, ErrBadRequest},
		{"cdevents bad type", "cdevents", nil, Call{Header: header(), Body: []byte(`{"context":{"version":"0.4.1","id":"1","source":"/s","type":"change.merged","timestamp":"2023-03-20T14:27:05Z"},"subject":{"id":"x"}}`)}, false, ErrBadRequest},
		{"cdevents not JSON", "cdevents", nil, Call{Header: header(), Body: []byte(`<xml/>`)}, false, ErrBadRequest},
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
	f.Add("nexus", "00", "", nexusAsset)
	f.Add("cdevents", "", "dev.cdevents.change.merged.0.2.0", cdChangeMerged)
	f.Add("acr", "", "", acrPush)
	f.Fuzz(func(t *testing.T, kind, sig, event string, body []byte) {
		h := header("X-Hub-Signature-256", sig, "X-Signature", sig, "X-Gitea-Signature", sig, "X-Hub-Signature", sig,
			"X-Nexus-Webhook-Signature", sig, "X-GitHub-Event", event, "X-Event-Key", event, "Ce-Type", event)
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
		case "nexus":
			if sig != sign(sha1.New, "the-real-token", body) && len(sig) < 40 {
				t.Fatalf("nexus call with signature %q passed", sig)
			}
		case "gitlab", "harbor":
			t.Fatalf("%s call without the token passed", kind)
		}
	})
}
