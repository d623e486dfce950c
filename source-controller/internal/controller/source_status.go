package controller

import (
	"context"
	"errors"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/plumb-dev/plumb/shared/events"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/metrics"
	"github.com/plumb-dev/plumb/shared/status"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

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

// statusFields are shared/status's pointers at the status fields every kind has.
type statusFields = status.Fields

// statusHelper is embedded by the reconcilers: stalls, events, the per-host bound and the one
// status patch.
type statusHelper struct {
	events    recorder.EventRecorder
	owner     string // field owner of status patches
	hosts     *hostlimit.Limiter
	busyRetry time.Duration
}

func newStatusHelper(events recorder.EventRecorder, owner string, opts Options) statusHelper {
	return statusHelper{events: events, owner: owner, hosts: opts.Hosts, busyRetry: opts.HostBusyRetry}
}

// stall marks a failure that retrying cannot fix: Stalled=True, Ready=False, a Warning event, and
// a terminal error so that only a change of the object reconciles it again.
func (h statusHelper) stall(obj sourceObject, reason, msg string) error {
	return status.Stall(h.events, obj, reason, msg)
}

// event records an Event on the object, annotated with the revision it is about when known.
func (h statusHelper) event(obj sourceObject, revision, eventType, reason, format string, args ...any) {
	events.Record(h.events, obj, revision, eventType, reason, format, args...)
}

// finalizeStatus settles the conditions from the outcome (shared/status) and writes status in
// one patch, recording the artifact's size too.
func (h statusHelper) finalizeStatus(ctx context.Context, obj sourceObject, st statusFields, patcher *status.Patcher, result *ctrl.Result, retErr *error) {
	if a := obj.GetArtifact(); a != nil && a.Size != nil && obj.GetDeletionTimestamp().IsZero() {
		metrics.RecordArtifactSize(st.Kind, obj.GetNamespace(), obj.GetName(), *a.Size)
	}
	if obj.GetDeletionTimestamp().IsZero() && !st.Suspend {
		stepConditions(obj)
	}
	if h.busyRetry > 0 && conditions.GetReason(obj, meta.ReadyCondition) == sourcev1.HostBusyReason {
		st.WaitInterval = h.busyRetry
	}
	status.Finish(ctx, obj, st, patcher, h.owner, result, retErr)
}

// acquireHost takes a slot of the remote's host for the fetch bounded by ctx, waiting at most the
// Limiter's short busy wait. A host still busy is not a failure of the object: it waits
// (Ready=False, HostBusy, "host X is busy: N operations in flight") and comes back after
// busyRetry, without holding a worker meanwhile.
func (h statusHelper) acquireHost(ctx context.Context, obj sourceObject, remote string) (func(), error) {
	release, err := h.hosts.Acquire(ctx, hostlimit.Key(remote))
	if errors.Is(err, hostlimit.ErrBusy) {
		return nil, h.hostBusy(obj, err)
	}
	return release, err
}

// hostBusy reports a busy host as a wait: Ready=False, HostBusy, back after busyRetry.
func (h statusHelper) hostBusy(obj sourceObject, err error) error {
	return status.Wait(h.events, obj, "", sourcev1.HostBusyReason, "%v", err)
}

// fetchReasons are the Ready reasons of a failed fetch from the remote.
var fetchReasons = map[string]bool{
	sourcev1.GitOperationFailedReason: true, sourcev1.AuthenticationFailedReason: true,
	sourcev1.RefNotFoundReason: true, sourcev1.OCIOperationFailedReason: true,
	sourcev1.NoMatchingVersionReason: true, sourcev1.IndexFetchFailedReason: true,
	sourcev1.ChartPullFailedReason: true, sourcev1.IncludeFailedReason: true,
	sourcev1.BucketOperationFailedReason: true, sourcev1.BucketNotFoundReason: true,
}

// stepConditions sets ArtifactInStorage and FetchFailed from the artifact and the Ready
// condition the steps left: what is served stays visible while the latest attempt fails.
func stepConditions(obj sourceObject) {
	if a := obj.GetArtifact(); a != nil {
		conditions.MarkTrue(obj, sourcev1.ArtifactInStorageCondition, sourcev1.SucceededReason, "stored artifact for revision %s", a.Revision)
	} else {
		conditions.Delete(obj, sourcev1.ArtifactInStorageCondition)
	}
	if reason := conditions.GetReason(obj, meta.ReadyCondition); conditions.IsFalse(obj, meta.ReadyCondition) && fetchReasons[reason] {
		conditions.MarkTrue(obj, sourcev1.FetchFailedCondition, reason, "%s", conditions.GetMessage(obj, meta.ReadyCondition))
	} else {
		conditions.Delete(obj, sourcev1.FetchFailedCondition)
	}
}
