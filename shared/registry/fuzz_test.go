package registry

import (
	"encoding/json"
	"errors"
	"testing"
)

// A dockerconfigjson Secret is written by users: any content gives an authenticator for an entry
// of the registry, nothing, or ErrAuth with a message that quotes nothing of the document.
func FuzzFromDockerConfig(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://ghcr.io/v1/":{"auth":"dTpw"}}}`), "ghcr.io")
	f.Add([]byte(`{"auths":{"docker.io":{"username":"u","password":"p"}}}`), "index.docker.io")
	f.Add([]byte(`{"auths":{"127.0.0.1:5000":{"identitytoken":"t"},"quay.io":{"auth":"!!"}}}`), "127.0.0.1:5000")
	f.Add([]byte(`{"auths":{"ghcr.io":{"auth":"cGFzcw=="}}}`), "ghcr.io")
	f.Add([]byte(`{"auths":{"ghcr.io":{"auth":"not base64"}}}`), "ghcr.io")
	f.Add([]byte(`{"auths":["x"]}`), "ghcr.io")
	f.Add([]byte(`{"auths":`), "ghcr.io")
	f.Fuzz(func(t *testing.T, data []byte, registry string) {
		a, found, err := fromDockerConfig(data, registry)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("error %q is not ErrAuth", err)
			}
			switch err.Error() {
			case "authentication failed: .dockerconfigjson is not valid JSON",
				"authentication failed: .dockerconfigjson: auth of " + registry + " is not base64",
				"authentication failed: .dockerconfigjson: auth of " + registry + " is not user:password":
			default:
				t.Fatalf("unexpected message %q", err)
			}
			if found || a != nil {
				t.Fatal("an authenticator with an error")
			}
			return
		}
		// The keys as JSON has them: an entry is found exactly when one is for the registry.
		var doc struct {
			Auths map[string]json.RawMessage `json:"auths"`
		}
		if json.Unmarshal(data, &doc) != nil {
			t.Fatalf("parsed a document that is not valid JSON: %q", data)
		}
		has := false
		for k := range doc.Auths {
			has = has || hostOf(k) == registry
		}
		if found != has {
			t.Fatalf("found = %v, but an entry for %q exists = %v", found, registry, has)
		}
		if !found {
			return
		}
		if _, err := a.Authorization(); err != nil {
			t.Fatalf("authenticator: %v", err)
		}
	})
}
