package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// isJob says whether o is a batch Job.
func isJob(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == "batch" && gvk.Kind == "Job"
}

// jobStatus judges a Job as Helm's wait for Jobs does: Current once it completed, Failed when
// it failed (with its condition's message), in progress otherwise. kstatus counts a Job whose
// Pods are running as current, which is not what a chart's migration Job waited for means. It
// reads the Job's status and spec.completions, which the watch of the objects Helm made keeps.
func jobStatus(_ context.Context, u *unstructured.Unstructured) (*status.Result, bool) {
	job := &batchv1.Job{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, job); err != nil {
		return &status.Result{Status: status.UnknownStatus, Message: fmt.Sprintf("not a Job: %v", err)}, true
	}
	for _, cond := range job.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		switch cond.Type {
		case batchv1.JobComplete:
			return &status.Result{Status: status.CurrentStatus, Message: "complete"}, true
		case batchv1.JobFailed:
			return &status.Result{Status: status.FailedStatus, Message: cond.Message}, true
		}
	}
	if job.Spec.Completions != nil && job.Status.Succeeded >= *job.Spec.Completions {
		return &status.Result{Status: status.CurrentStatus, Message: "complete"}, true
	}
	return &status.Result{Status: status.InProgressStatus, Message: fmt.Sprintf("not complete (active %d, succeeded %d, failed %d)",
		job.Status.Active, job.Status.Succeeded, job.Status.Failed)}, true
}
