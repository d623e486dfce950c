// Package events owns the events contract every Plumb controller follows: Kubernetes Events on
// the object, the controller as reporting component, the Ready reason as event reason, and the
// revision the event is about in an annotation.
package events

import (
	"fmt"
	"unicode/utf8"

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
	rec.AnnotatedEventf(obj, nil, annotations, eventType, reason, "Reconcile", "%s", Truncate(fmt.Sprintf(format, args...)))
}

// NoteLimit is the most bytes the API server accepts in an event's note; it rejects a longer
// event outright, so the person would see nothing at all.
const NoteLimit = 1024

// Truncate shortens a message to NoteLimit bytes, cutting at a character boundary and marking the
// cut with an ellipsis; the whole message stays in the object's Ready condition.
func Truncate(msg string) string {
	if len(msg) <= NoteLimit {
		return msg
	}
	const mark = "…"
	cut := NoteLimit - len(mark)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + mark
}
