package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/expr"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

// statusText compiles a Provider's spec.commitStatusExpr and spec.commitStatusDescriptionExpr
// into the name and description of its commit statuses (nil functions for the defaults); the
// error names the field and the expression.
func statusText(p *notifyv1.Provider) (notify.StatusText, error) {
	var t notify.StatusText
	for _, f := range []struct {
		field, src string
		kind       *expr.Kind
		set        *func(context.Context, notify.Notification) (string, error)
	}{
		{"spec.commitStatusExpr", p.Spec.CommitStatusExpr, expr.CommitStatusID, &t.Name},
		{"spec.commitStatusDescriptionExpr", p.Spec.CommitStatusDescriptionExpr, expr.CommitStatusDescription, &t.Description},
	} {
		if f.src == "" {
			continue
		}
		e, err := expr.Compile(f.kind, f.src)
		if err != nil {
			return notify.StatusText{}, fmt.Errorf("%s: %w", f.field, err)
		}
		*f.set = evaluate(e, p)
	}
	return t, nil
}

// evaluate evaluates a commit status expression on a notification, given Flux's variables:
// `event` in the shape of Flux's events, `alert` and `provider`.
func evaluate(e *expr.Expression, p *notifyv1.Provider) func(context.Context, notify.Notification) (string, error) {
	provider, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	return func(ctx context.Context, n notify.Notification) (string, error) {
		if err != nil {
			return "", fmt.Errorf("the Provider as content: %w", err)
		}
		alert := n.Alert
		if alert == nil {
			alert = map[string]any{}
		}
		return e.Text(ctx, map[string]any{"event": notify.FluxEvent(n), "alert": alert, "provider": provider})
	}
}
