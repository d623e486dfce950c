package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/health"
)

// isJob says whether o is a batch Job.
func isJob(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == "batch" && gvk.Kind == "Job"
}

// waitJobsComplete waits until every Job of jobs has completed, as Helm's wait for Jobs does:
// kstatus counts a Job whose Pods are running as current, which is not what a chart's
// migration Job waited for means. A Job that failed ends the wait with its condition's message.
// Polls start at 100 ms and back off to 2 s.
func waitJobsComplete(ctx context.Context, c client.Reader, jobs []*unstructured.Unstructured) error {
	pending := jobs
	wait := 100 * time.Millisecond
	for len(pending) > 0 {
		var next []*unstructured.Unstructured
		var why []string
		for _, o := range pending {
			done, msg, err := jobComplete(ctx, c, o)
			if err != nil {
				return err
			}
			if !done {
				next, why = append(next, o), append(why, health.Describe(o)+": "+msg)
			}
		}
		if pending = next; len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			sort.Strings(why)
			return fmt.Errorf("timed out waiting for %d Job(s) to complete: %s", len(why), strings.Join(why, "; "))
		case <-time.After(wait):
		}
		if wait < 2*time.Second {
			wait *= 2
		}
	}
	return nil
}

// jobComplete reads a Job: done when it completed; an error when it failed; otherwise not done,
// with what it is at.
func jobComplete(ctx context.Context, c client.Reader, o *unstructured.Unstructured) (bool, string, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(o.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKeyFromObject(o), u); err != nil {
		if ctx.Err() != nil {
			return false, "not read", nil
		}
		return false, "", fmt.Errorf("%s: %w", health.Describe(o), err)
	}
	job := &batchv1.Job{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, job); err != nil {
		return false, "", fmt.Errorf("%s: %w", health.Describe(o), err)
	}
	for _, cond := range job.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		switch cond.Type {
		case batchv1.JobComplete:
			return true, "", nil
		case batchv1.JobFailed:
			return false, "", fmt.Errorf("%s failed: %s", health.Describe(o), cond.Message)
		}
	}
	if job.Spec.Completions != nil && job.Status.Succeeded >= *job.Spec.Completions {
		return true, "", nil
	}
	return false, fmt.Sprintf("not complete (active %d, succeeded %d, failed %d)", job.Status.Active, job.Status.Succeeded, job.Status.Failed), nil
}
