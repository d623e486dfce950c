package release

import (
	"bytes"
	"strings"
	"testing"

	kustypes "sigs.k8s.io/kustomize/api/types"
)

func TestKustomizerPatchesAndImages(t *testing.T) {
	rendered := bytes.NewBufferString(`---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: app
          image: registry.example.invalid/app:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  a: "1"
`)
	k := &Kustomizer{
		Patches: []KustomizePatch{
			{Patch: "- op: replace\n  path: /spec/replicas\n  value: 3\n", Target: Selector("apps", "v1", "Deployment", "web", "", "", "")},
			{Patch: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  b: \"2\"\n"},
		},
		Images: []kustypes.Image{{Name: "registry.example.invalid/app", NewTag: "2.0.0"}},
	}
	out, err := k.Run(rendered)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"replicas: 3", "image: registry.example.invalid/app:2.0.0", `b: "2"`, `a: "1"`} {
		if !strings.Contains(s, want) {
			t.Errorf("post-rendered manifests lack %q:\n%s", want, s)
		}
	}
	if _, err := (&Kustomizer{Patches: []KustomizePatch{{Patch: "not: [a patch"}}}).Run(bytes.NewBufferString("kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n")); err == nil {
		t.Error("a broken patch is an error")
	}
}
