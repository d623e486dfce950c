// Package ops holds what the plumb commands and the dashboard both do with Plumb objects: read
// what an object applied (a Kustomization's inventory, a HelmRelease's Helm release), list the
// Events of Plumb objects, diff a Kustomization's build against the cluster, request a
// reconcile, suspend and resume. It writes nothing to a terminal: the commands print, the
// dashboard renders.
package ops

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/reconcile"
)

// RequestReconcile asks obj's controller for a reconcile now, as a webhook receiver does: it
// sets the reconcile request annotation to a new value and returns that value, which the
// controller echoes in status.lastHandledReconcileAt once handled.
func RequestReconcile(ctx context.Context, c client.Client, obj client.Object) (string, error) {
	value := time.Now().Format(time.RFC3339Nano)
	if err := c.Patch(ctx, obj, reconcile.RequestPatch(value)); err != nil {
		return "", err
	}
	return value, nil
}

// SetSuspend sets spec.suspend of obj.
func SetSuspend(ctx context.Context, c client.Client, obj client.Object, suspend bool) error {
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"suspend":%t}}`, suspend))
	return c.Patch(ctx, obj, patch)
}
