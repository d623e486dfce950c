package release

import (
	"testing"

	"helm.sh/helm/v3/pkg/kube"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/resource"
)

func object(apiVersion, kind, ns, name, resourceVersion string, generation int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetResourceVersion(resourceVersion)
	u.SetGeneration(generation)
	return u
}

func info(o runtime.Object, apiVersion, kind string) *resource.Info {
	gvk := unstructured.Unstructured{}
	gvk.SetAPIVersion(apiVersion)
	gvk.SetKind(kind)
	return &resource.Info{Object: o, Mapping: &meta.RESTMapping{GroupVersionKind: gvk.GroupVersionKind()}}
}

// The answers of the API server to Helm's writes are kept, by group, kind, namespace and name
// (whatever the version asked for); an object Helm failed to write (the manifest's, without a
// resource version) is not; a new action forgets the last one's.
func TestWrittenAnswers(t *testing.T) {
	c := &writtenClient{}
	typed := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cfg", ResourceVersion: "12"}}
	c.note(kube.ResourceList{
		info(object("apps/v1", "Deployment", "shop", "web", "10", 2), "apps/v1", "Deployment"),
		info(object("apps/v1", "Deployment", "shop", "unwritten", "", 0), "apps/v1", "Deployment"),
		info(typed, "v1", "ConfigMap"),
		nil,
	})
	for _, tc := range []struct {
		name string
		o    *unstructured.Unstructured
		rv   string
	}{
		{"written", object("apps/v1", "Deployment", "shop", "web", "", 0), "10"},
		{"another version of the kind", object("apps/v1beta2", "Deployment", "shop", "web", "", 0), "10"},
		{"a typed answer", object("v1", "ConfigMap", "shop", "cfg", "", 0), "12"},
		{"not written", object("apps/v1", "Deployment", "shop", "unwritten", "", 0), ""},
		{"another namespace", object("apps/v1", "Deployment", "other", "web", "", 0), ""},
		{"another kind", object("apps/v1", "StatefulSet", "shop", "web", "", 0), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := c.written(tc.o)
			switch {
			case tc.rv == "" && got != nil:
				t.Errorf("answer %v, want none", got.Object)
			case tc.rv != "" && got == nil:
				t.Error("no answer")
			case tc.rv != "" && got.GetResourceVersion() != tc.rv:
				t.Errorf("answer at resourceVersion %s, want %s", got.GetResourceVersion(), tc.rv)
			}
		})
	}
	if got := c.written(object("apps/v1", "Deployment", "shop", "web", "", 0)); got.GetGeneration() != 2 {
		t.Errorf("generation %d, want the answer's 2", got.GetGeneration())
	}
	c.reset()
	if c.written(object("apps/v1", "Deployment", "shop", "web", "", 0)) != nil {
		t.Error("an answer of the last action is kept after reset")
	}
	var none *writtenClient
	none.reset()
	if none.written(object("apps/v1", "Deployment", "shop", "web", "", 0)) != nil {
		t.Error("a Helm without a cluster client has answers")
	}
}
