package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// A run that reads the Kustomization from a cache behind the status write that handled its
// request does not take the request for a new one; a new request, or a Kustomization made again
// under the name, is new.
func TestHandledRequestsCatchUp(t *testing.T) {
	key := types.NamespacedName{Namespace: "apps", Name: "web"}
	kustomization := func(uid types.UID, requested, handled string) *applyv1.Kustomization {
		k := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, UID: uid,
			Annotations: map[string]string{plumbreconcile.RequestedAtAnnotation: requested}}}
		k.Status.LastHandledReconcileAt = handled
		return k
	}
	var h handledRequests
	h.remember(key, kustomization("u1", "t2", "t2")) // the status write that handled t2

	cases := []struct {
		name string
		obj  *applyv1.Kustomization
		want string
	}{
		{"the cache behind the write", kustomization("u1", "t2", "t1"), "t2"},
		{"a new request", kustomization("u1", "t3", "t2"), "t2"},
		{"a new request, the cache behind", kustomization("u1", "t3", "t1"), "t1"},
		{"made again under the name", kustomization("u2", "t2", ""), ""},
	}
	for _, tc := range cases {
		h.catchUp(key, tc.obj)
		if got := tc.obj.Status.LastHandledReconcileAt; got != tc.want {
			t.Errorf("%s: lastHandledReconcileAt %q, want %q", tc.name, got, tc.want)
		}
	}
	h.forget(key)
	behind := kustomization("u1", "t2", "t1")
	h.catchUp(key, behind)
	if behind.Status.LastHandledReconcileAt != "t1" {
		t.Errorf("after forget: lastHandledReconcileAt %q, want t1", behind.Status.LastHandledReconcileAt)
	}
}
