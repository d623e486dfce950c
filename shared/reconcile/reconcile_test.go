package reconcile

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

func TestRequested(t *testing.T) {
	obj := func(annotations map[string]string) client.Object {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
	}
	at := func(v string) map[string]string { return map[string]string{RequestedAtAnnotation: v} }
	cases := []struct {
		name     string
		old, new client.Object
		want     bool
	}{
		{"set for the first time", obj(nil), obj(at("1")), true},
		{"changed", obj(at("1")), obj(at("2")), true},
		{"unchanged", obj(at("1")), obj(at("1")), false},
		{"removed", obj(at("1")), obj(nil), false},
		{"other annotation changed", obj(map[string]string{"x": "1"}), obj(map[string]string{"x": "2"}), false},
		{"missing old object", nil, obj(at("1")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Requested{}).Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
				t.Errorf("Update = %v, want %v", got, tc.want)
			}
		})
	}
}
