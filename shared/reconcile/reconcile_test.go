package reconcile

import (
	"context"
	"errors"
	"strings"
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

func TestRequestedOtherAnnotation(t *testing.T) {
	obj := func(annotations map[string]string) client.Object {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
	}
	p := Requested{Annotation: "example.com/resetAt"}
	if !p.Update(event.UpdateEvent{ObjectOld: obj(nil), ObjectNew: obj(map[string]string{"example.com/resetAt": "1"})}) {
		t.Error("a new value of the other annotation was not passed")
	}
	if p.Update(event.UpdateEvent{ObjectOld: obj(nil), ObjectNew: obj(map[string]string{RequestedAtAnnotation: "1"})}) {
		t.Error("the reconcile annotation passed a predicate watching another one")
	}
}

func TestRecovered(t *testing.T) {
	run := func(fail bool) (err error) {
		defer func() { Recovered(context.Background(), recover(), &err) }()
		if fail {
			panic("something nil")
		}
		return errors.New("returned")
	}
	if err := run(false); err == nil || err.Error() != "returned" {
		t.Errorf("without a panic the error changed: %v", err)
	}
	if err := run(true); err == nil || !strings.Contains(err.Error(), "internal error") || !strings.Contains(err.Error(), "something nil") {
		t.Errorf("a panic did not become the error: %v", err)
	}
}

func TestCycle(t *testing.T) {
	graph := map[string][]string{
		"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": {"d"},
		"x": {"y"}, "y": {"z"}, "z": {},
		"self": {"self"},
	}
	next := func(n string) []string { return graph[n] }
	cases := []struct {
		start string
		want  []string
	}{
		{"a", []string{"a", "b", "c", "a"}},
		{"x", nil},
		{"self", []string{"self", "self"}},
		{"d", []string{"d", "d"}},
		{"missing", nil},
	}
	for _, tc := range cases {
		t.Run(tc.start, func(t *testing.T) {
			got := Cycle(tc.start, next)
			if strings.Join(got, ">") != strings.Join(tc.want, ">") {
				t.Errorf("Cycle(%s) = %v, want %v", tc.start, got, tc.want)
			}
		})
	}
	// A cycle that does not pass through start is not start's cycle, and the walk ends.
	if got := Cycle("b", func(n string) []string { return map[string][]string{"b": {"d"}, "d": {"e"}, "e": {"d"}}[n] }); got != nil {
		t.Errorf("a cycle away from start was reported: %v", got)
	}
}
