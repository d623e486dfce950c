package controller

import (
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// finalize deletes the object's artifacts, then lets it go.
func (r *GitRepositoryReconciler) finalize(obj *sourcev1.GitRepository) error {
	if err := r.Storage.Delete(objectOf(obj)); err != nil {
		markFailed(obj, sourcev1.ArtifactFailedReason, "deleting artifacts: %v", err)
		return fmt.Errorf("delete artifacts: %w", err)
	}
	r.builds.forget(objectOf(obj))
	controllerutil.RemoveFinalizer(obj, sourcev1.SourceFinalizer)
	return nil
}
