// Package events owns the events contract every Plumb controller follows: Kubernetes Events on
// the object, the controller as reporting component, the Ready reason as event reason, and the
// revision the event is about in an annotation.
package events

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// RevisionAnnotation carries the revision an event is about.
const RevisionAnnotation = "plumb.dev/revision"

// Record records an event on obj, annotated with revision when it is known. A nil recorder
// records nothing.
func Record(rec recorder.EventRecorder, obj runtime.Object, revision, eventType, reason, format string, args ...any) {
	if rec == nil {
		return
	}
	var annotations map[string]string
	if revision != "" {
		annotations = map[string]string{RevisionAnnotation: revision}
	}
	rec.AnnotatedEventf(obj, nil, annotations, eventType, reason, "Reconcile", "%s", fmt.Sprintf(format, args...))
}
