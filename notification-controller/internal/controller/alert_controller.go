package controller

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/status"
)

// +kubebuilder:rbac:groups=notification.plumb.dev,resources=alerts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=notification.plumb.dev,resources=alerts/status,verbs=get;update;patch

// AlertReconciler checks an Alert's Provider and expressions.
type AlertReconciler struct {
	client.Client
	ControllerName string
	// NoCrossNamespaceRefs refuses event sources in other namespaces than the Alert's (and *).
	NoCrossNamespaceRefs bool
}

// SetupWithManager registers the reconciler.
func (r *AlertReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&notifyv1.Alert{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// Reconcile marks the Alert Ready when its Provider exists and its expressions compile.
func (r *AlertReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &notifyv1.Alert{}
	if found, err := status.Get(ctx, r.Client, notifyv1.AlertKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		status.Finish(ctx, obj, status.Fields{Kind: notifyv1.AlertKind, ObservedGeneration: &obj.Status.ObservedGeneration,
			Requests: &obj.Status.ReconcileRequestStatus}, patcher, r.ControllerName, &result, &retErr)
	}()
	if msg := invalidAlert(obj); msg != "" {
		return ctrl.Result{}, status.Stall(nil, obj, notifyv1.InvalidSpecReason, msg)
	}
	// A stalled Alert sends nothing (see Dispatcher): none of its sources, not even its own
	// namespace's, so that the refusal cannot go unnoticed.
	if r.NoCrossNamespaceRefs {
		if msg := crossNamespaceSource(obj); msg != "" {
			return ctrl.Result{}, status.Stall(nil, obj, notifyv1.AccessDeniedReason, msg)
		}
	}
	p := &notifyv1.Provider{}
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.ProviderRef.Name}
	if err := r.Get(ctx, key, p); err != nil {
		if apierrors.IsNotFound(err) {
			err = errors.New("not found")
		}
		return ctrl.Result{}, status.Fail(nil, obj, "", notifyv1.ProviderNotReadyReason, fmt.Errorf("%s %s: %w", notifyv1.ProviderKind, key, err))
	}
	conditions.MarkTrue(obj, meta.ReadyCondition, notifyv1.SucceededReason, "sending to Provider %s", p.Name)
	return ctrl.Result{}, nil
}

// crossNamespaceSource names the first event source outside the Alert's namespace, or returns "".
func crossNamespaceSource(obj *notifyv1.Alert) string {
	for _, src := range obj.Spec.EventSources {
		if src.Namespace != "" && src.Namespace != obj.Namespace {
			return fmt.Sprintf("eventSources %s in namespace %q: cross-namespace references are disabled (--no-cross-namespace-refs)", src.Kind, src.Namespace)
		}
	}
	return ""
}

// invalidAlert names what in an Alert's spec cannot work, or returns "": expressions and name
// globs that do not compile.
func invalidAlert(obj *notifyv1.Alert) string {
	for _, list := range [][]string{obj.Spec.InclusionList, obj.Spec.ExclusionList} {
		for _, expr := range list {
			if _, err := regexp.Compile(expr); err != nil {
				return fmt.Sprintf("expression %q: %v", expr, err)
			}
		}
	}
	for _, src := range obj.Spec.EventSources {
		if _, err := path.Match(src.Name, ""); err != nil {
			return fmt.Sprintf("eventSources name %q is not a glob: %v", src.Name, err)
		}
	}
	return ""
}
