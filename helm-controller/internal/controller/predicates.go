package controller

import (
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// resetRequested passes updates that set a new helm.plumb.dev/resetAt value.
type resetRequested struct{ predicate.Funcs }

func (resetRequested) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	v, ok := e.ObjectNew.GetAnnotations()[helmv1.ResetAtAnnotation]
	return ok && v != e.ObjectOld.GetAnnotations()[helmv1.ResetAtAnnotation]
}
