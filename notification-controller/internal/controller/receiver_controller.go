// Package controller holds notification-controller's reconcilers and its webhook server.
package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/expr"
	"github.com/plumb-dev/plumb/notification-controller/internal/receiver"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/status"
)

// +kubebuilder:rbac:groups=notification.plumb.dev,resources=receivers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=notification.plumb.dev,resources=receivers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// Receiver targets are not granted here: the aggregated ClusterRole of
// config/rbac/receiver_targets.yaml gathers the kinds that opt in (ReceiverTargetLabel).
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// TokenRecheck is how often a Receiver reads its token again, to publish the path of a new one,
// unless its spec.interval says otherwise (Flux's default, too).
const TokenRecheck = 10 * time.Minute

// WebhookPathIndex indexes Receivers by status.webhookPath, for the server.
const WebhookPathIndex = ".status.webhookPath"

// ReceiverReconciler publishes each Receiver's webhook path.
type ReceiverReconciler struct {
	client.Client
	// APIReader reads token Secrets, uncached.
	APIReader      client.Reader
	Events         recorder.EventRecorder
	ControllerName string
	// NoCrossNamespaceRefs refuses resources in other namespaces than the Receiver's.
	NoCrossNamespaceRefs bool
}

// SetupWithManager registers the reconciler and the webhook path index.
func (r *ReceiverReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &notifyv1.Receiver{}, WebhookPathIndex, func(o client.Object) []string {
		if p := o.(*notifyv1.Receiver).Status.WebhookPath; p != "" {
			return []string{p}
		}
		return nil
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&notifyv1.Receiver{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, plumbreconcile.Requested{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.Concurrent}).
		Complete(r)
}

// Reconcile reads the token and publishes the webhook path it makes.
func (r *ReceiverReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &notifyv1.Receiver{}
	if found, err := status.Get(ctx, r.Client, notifyv1.ReceiverKind, req.NamespacedName, obj); !found {
		return ctrl.Result{}, err
	}
	patcher := status.NewPatcher(r.Client, obj)
	defer func() {
		plumbreconcile.Recovered(ctx, recover(), &retErr)
		status.Finish(ctx, obj, status.Fields{Kind: notifyv1.ReceiverKind, ObservedGeneration: &obj.Status.ObservedGeneration,
			Requests: &obj.Status.ReconcileRequestStatus}, patcher, r.ControllerName, &result, &retErr)
	}()
	// What the schema refuses is checked again, for API servers that skip its rules.
	if err := checkSpec(obj); err != nil {
		return ctrl.Result{}, status.Stall(r.Events, obj, notifyv1.InvalidSpecReason, err.Error())
	}
	token, _, err := Token(ctx, r.APIReader, obj)
	if err != nil {
		return ctrl.Result{}, status.Fail(r.Events, obj, "", notifyv1.TokenNotFoundReason, err)
	}
	obj.Status.WebhookPath = receiver.Path(token, obj.Name, obj.Namespace)
	// An expression that does not compile will not compile on retry: Stalled until the spec
	// changes. The path stays published; calls to it are answered 503 and act on nothing.
	if _, err := receiver.Issuers(obj.Spec.OIDCProviders); err != nil {
		reason := notifyv1.InvalidSpecReason
		if errors.Is(err, expr.ErrCompile) {
			reason = notifyv1.InvalidCELExpressionReason
		}
		return ctrl.Result{}, status.Stall(r.Events, obj, reason, err.Error())
	}
	if _, err := compileFilters(obj); err != nil {
		return ctrl.Result{}, status.Stall(r.Events, obj, notifyv1.InvalidCELExpressionReason, err.Error())
	}
	// A refused resource keeps the Receiver from Ready, but its path is published and calls act
	// on the other resources. Retried: a kind may opt in later.
	if refused := refusals(ctx, r.APIReader, obj, r.NoCrossNamespaceRefs); len(refused) > 0 {
		return ctrl.Result{}, status.Fail(r.Events, obj, "", notifyv1.AccessDeniedReason,
			fmt.Errorf("refused resources: %s; calls at %s act on the others", strings.Join(refused, ", "), obj.Status.WebhookPath))
	}
	conditions.MarkTrue(obj, meta.ReadyCondition, notifyv1.SucceededReason, "receiving %s calls at %s", obj.Spec.Type, obj.Status.WebhookPath)
	// Secrets are not watched: a new token's path is published at the next check (the old path
	// stops working at once, see Server).
	return ctrl.Result{RequeueAfter: plumbreconcile.Jitter(tokenRecheck(obj))}, nil
}

// tokenRecheck is spec.interval, or TokenRecheck when it is not set.
func tokenRecheck(obj *notifyv1.Receiver) time.Duration {
	if obj.Spec.Interval != nil && obj.Spec.Interval.Duration > 0 {
		return obj.Spec.Interval.Duration
	}
	return TokenRecheck
}

// checkSpec refuses what the schema's rules refuse: generic-oidc has oidcProviders and no
// secretRef, every other type a secretRef and no oidcProviders.
func checkSpec(obj *notifyv1.Receiver) error {
	oidc := obj.Spec.Type == notifyv1.GenericOIDCReceiver
	switch {
	case oidc && len(obj.Spec.OIDCProviders) == 0:
		return errors.New("generic-oidc receivers must define at least one oidcProvider")
	case oidc && obj.Spec.SecretRef != nil:
		return errors.New("secretRef cannot be set when type is generic-oidc")
	case !oidc && len(obj.Spec.OIDCProviders) > 0:
		return errors.New("oidcProviders can only be set when type is generic-oidc")
	case !oidc && obj.Spec.SecretRef == nil:
		return errors.New("secretRef is required when type is not generic-oidc")
	}
	return nil
}

// secretKeys are the keys a type needs in its Secret besides `token`, and what each is.
var secretKeys = map[string][][2]string{
	notifyv1.GCRReceiver: {
		{"email", "the service account of the Pub/Sub push subscription's OIDC token"},
		{"audience", "the audience of that token, by default the push endpoint's URL"},
	},
}

// Token reads the `token` key of a Receiver's Secret, and the Secret's data (which holds more
// keys for some types, and which it checks). A generic-oidc Receiver has no Secret: its token
// is "".
func Token(ctx context.Context, r client.Reader, obj *notifyv1.Receiver) (string, map[string][]byte, error) {
	if obj.Spec.SecretRef == nil {
		return "", nil, nil
	}
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.SecretRef.Name}
	if err := r.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil, fmt.Errorf("token Secret %s not found", key)
		}
		return "", nil, fmt.Errorf("token Secret %s: %w", key, err)
	}
	t := string(s.Data["token"])
	if t == "" {
		return "", nil, fmt.Errorf("token Secret %s has no token key", key)
	}
	for _, k := range secretKeys[obj.Spec.Type] {
		if len(s.Data[k[0]]) == 0 {
			return "", nil, fmt.Errorf("token Secret %s has no %s key (%s type: %s)", key, k[0], obj.Spec.Type, k[1])
		}
	}
	return t, s.Data, nil
}
