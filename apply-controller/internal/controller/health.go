package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// waitHealthy polls each object with its own GET until kstatus says Current for all, one says
// Failed, or ctx ends. Reading objects one by one keeps the cost of a Kustomization independent
// of how many objects of the same kind the namespace holds (a list per poll would make a
// thousand Kustomizations cost a million object reads).
//
// superseded is asked between polls; when it returns a reason (a new source revision), the wait
// ends at once with errSuperseded, so that the new revision is applied without waiting out the
// timeout of the old one.
func waitHealthy(ctx context.Context, c client.Reader, objs []*unstructured.Unstructured, superseded func() string) error {
	pending := objs
	wait := 100 * time.Millisecond
	for {
		var next []*unstructured.Unstructured
		var why []string
		for _, o := range pending {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(o.GroupVersionKind())
			err := c.Get(ctx, client.ObjectKeyFromObject(o), u)
			if apierrors.IsNotFound(err) || err != nil && ctx.Err() != nil {
				next, why = append(next, o), append(why, describeObject(o)+": not found yet")
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: %w", describeObject(o), err)
			}
			res, err := status.Compute(u)
			if err != nil {
				return fmt.Errorf("%s: %w", describeObject(o), err)
			}
			switch res.Status {
			case status.CurrentStatus:
			case status.FailedStatus:
				return fmt.Errorf("%s failed: %s", describeObject(o), res.Message)
			default:
				next, why = append(next, o), append(why, fmt.Sprintf("%s: %s", describeObject(o), strings.TrimSpace(string(res.Status)+" "+res.Message)))
			}
		}
		if len(next) == 0 {
			return nil
		}
		pending = next
		if why := superseded(); why != "" {
			return &supersededError{why}
		}
		select {
		case <-ctx.Done():
			sort.Strings(why)
			return fmt.Errorf("timed out waiting for %d object(s): %s", len(why), strings.Join(why, "; "))
		case <-time.After(wait):
		}
		if wait < 2*time.Second {
			wait *= 2
		}
	}
}

func describeObject(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s/%s/%s", o.GetKind(), ns, o.GetName())
	}
	return fmt.Sprintf("%s/%s", o.GetKind(), o.GetName())
}

// supersededError ends a health wait that a newer revision made pointless.
type supersededError struct{ why string }

func (e *supersededError) Error() string { return "health check canceled: " + e.why }
