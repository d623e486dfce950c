package controller

import (
	"context"
	"errors"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/metrics"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// ownedConditions are the condition types this controller writes.
var ownedConditions = []string{meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition}

func markReconciling(obj conditions.Setter, format string, args ...any) {
	conditions.MarkReconciling(obj, sourcev1.ProgressingReason, format, args...)
}

func markReady(obj conditions.Setter, revision string) {
	conditions.MarkTrue(obj, meta.ReadyCondition, sourcev1.SucceededReason, "stored artifact for revision %s", revision)
}

// markReadyMessage marks Ready=True with a message of the kind's own.
func markReadyMessage(obj conditions.Setter, format string, args ...any) {
	conditions.MarkTrue(obj, meta.ReadyCondition, sourcev1.SucceededReason, format, args...)
}

func markFailed(obj conditions.Setter, reason, format string, args ...any) {
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, format, args...)
}

// sourceObject is what the status helpers need of every source kind.
type sourceObject interface {
	conditions.Setter
	GetArtifact() *meta.Artifact
}

// statusFields points at the status fields that every source kind has.
type statusFields struct {
	kind               string
	suspend            bool
	observedGeneration *int64
	requests           *meta.ReconcileRequestStatus
}

// statusHelper is embedded by the reconcilers: stalls, events and the one status patch.
type statusHelper struct {
	events recorder.EventRecorder
	owner  string // field owner of status patches
}

// stall marks a failure that retrying cannot fix: Stalled=True, Ready=False, a Warning event, and
// a terminal error so that only a change of the object reconciles it again.
func (h statusHelper) stall(obj sourceObject, reason, msg string) error {
	conditions.MarkStalled(obj, reason, "%s", msg)
	markFailed(obj, reason, "%s", msg)
	h.event(obj, "", corev1.EventTypeWarning, reason, "%s", msg)
	return reconcile.TerminalError(errors.New(msg))
}

// event records an Event on the object, annotated with the revision it is about when known.
func (h statusHelper) event(obj sourceObject, revision, eventType, reason, format string, args ...any) {
	events.Record(h.events, obj, revision, eventType, reason, format, args...)
}

// finalizeStatus settles the conditions from the outcome and writes status in one patch.
func (h statusHelper) finalizeStatus(ctx context.Context, obj sourceObject, st statusFields, patcher *patch.SerialPatcher, retErr *error) {
	if v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations()); ok {
		st.requests.LastHandledReconcileAt = v
	}
	setOutcome(obj, st, *retErr)
	if obj.GetDeletionTimestamp().IsZero() {
		metrics.RecordConditions(st.kind, obj.GetNamespace(), obj.GetName(), obj.GetConditions())
		if a := obj.GetArtifact(); a != nil && a.Size != nil {
			metrics.RecordArtifactSize(st.kind, obj.GetNamespace(), obj.GetName(), *a.Size)
		}
	}
	err := patcher.Patch(ctx, obj,
		patch.WithOwnedConditions{Conditions: ownedConditions},
		patch.WithFieldOwner(h.owner),
	)
	if err != nil && !(apierrors.IsNotFound(err) && !obj.GetDeletionTimestamp().IsZero()) {
		log.FromContext(ctx).Error(err, "patching status")
		*retErr = kerrors.NewAggregate([]error{*retErr, err})
	}
}

// setOutcome is the pure part of finalizeStatus: conditions and observedGeneration from the error
// the reconcile returned.
func setOutcome(obj sourceObject, st statusFields, err error) {
	switch {
	case !obj.GetDeletionTimestamp().IsZero(), st.suspend:
		// Leave the last observed state as it is.
	case err == nil:
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.Delete(obj, meta.StalledCondition)
		*st.observedGeneration = obj.GetGeneration()
	case errors.Is(err, reconcile.TerminalError(nil)):
		conditions.Delete(obj, meta.ReconcilingCondition)
		*st.observedGeneration = obj.GetGeneration()
	default:
		conditions.Delete(obj, meta.StalledCondition)
		if !conditions.IsFalse(obj, meta.ReadyCondition) {
			markFailed(obj, meta.FailedReason, "%v", err)
		}
		conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason, "retrying after: %s", conditions.GetReason(obj, meta.ReadyCondition))
	}
}
