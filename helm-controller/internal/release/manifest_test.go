package release

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestObjectsSetTheReleaseNamespace(t *testing.T) {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot)
	manifest := "---\n# Source: app/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n" +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: elsewhere\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n" +
		"---\napiVersion: example.com/v1\nkind: Unknown\nmetadata:\n  name: u\n---\n"
	objs, err := Objects(manifest, "shop", m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	want := []string{"ConfigMap/shop/a", "ConfigMap/elsewhere/b", "Namespace//team", "Unknown//u"}
	if len(got) != len(want) {
		t.Fatalf("Objects = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Objects[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := Objects("kind: [", "shop", m); err == nil {
		t.Error("a broken manifest is an error")
	}
}
