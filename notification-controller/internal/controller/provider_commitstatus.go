package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/expr"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

// commitStatusExpr compiles a Provider's spec.commitStatusExpr (nil when not set); the error
// names the field and the expression.
func commitStatusExpr(p *notifyv1.Provider) (*expr.Expression, error) {
	if p.Spec.CommitStatusExpr == "" {
		return nil, nil
	}
	e, err := expr.Compile(expr.CommitStatusID, p.Spec.CommitStatusExpr)
	if err != nil {
		return nil, fmt.Errorf("spec.commitStatusExpr: %w", err)
	}
	return e, nil
}

// statusID names a notification's commit status with a Provider's commitStatusExpr, given
// Flux's variables: `event` in the shape of Flux's events, `alert` and `provider`.
func statusID(e *expr.Expression, p *notifyv1.Provider) func(context.Context, notify.Notification) (string, error) {
	provider, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	return func(ctx context.Context, n notify.Notification) (string, error) {
		if err != nil {
			return "", fmt.Errorf("the Provider as content: %w", err)
		}
		alert := n.Alert
		if alert == nil {
			alert = map[string]any{}
		}
		return e.Text(ctx, map[string]any{"event": fluxEvent(n), "alert": alert, "provider": provider})
	}
}

// fluxEvent is a notification in the shape of Flux's events (event.toolkit.fluxcd.io): the
// revision is in metadata, as Flux's controllers put it, with the Alert's eventMetadata.
func fluxEvent(n notify.Notification) map[string]any {
	md := map[string]any{}
	for k, v := range n.Metadata {
		md[k] = v
	}
	if n.Revision != "" {
		md["revision"] = n.Revision
	}
	return map[string]any{
		"involvedObject": map[string]any{
			"apiVersion": n.APIVersion, "kind": n.Kind, "namespace": n.Namespace, "name": n.Name,
		},
		"severity":            n.Severity,
		"reason":              n.Reason,
		"message":             n.Message,
		"metadata":            md,
		"reportingController": n.Controller,
		"timestamp":           n.Time.UTC().Format(time.RFC3339),
	}
}
