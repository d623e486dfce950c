// Package health waits for objects to become healthy as kstatus judges them, reading each with
// its own GET (a list per poll would make a thousand owners cost a million object reads).
package health

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

// Wait polls each object with its own GET until kstatus says Current for all, one says Failed,
// or ctx ends; polls start at 100 ms and back off to 2 s.
//
// superseded, when not nil, is asked between polls; when it returns a reason (a new source
// revision), the wait ends at once with a *SupersededError, so that the new revision is applied
// without waiting out the timeout of the old one.
func Wait(ctx context.Context, c client.Reader, objs []*unstructured.Unstructured, superseded func() string) error {
	return WaitWith(ctx, c, objs, Options{Superseded: superseded})
}

// StatusFunc judges an object that kstatus cannot (a custom resource with health expressions,
// see shared/health/cel); it returns false to leave the object to kstatus.
type StatusFunc func(ctx context.Context, u *unstructured.Unstructured) (*status.Result, bool)

// Options of WaitWith.
type Options struct {
	// Superseded is asked between polls, as by Wait.
	Superseded func() string
	// Status, when not nil, is asked first for every object.
	Status StatusFunc
}

// WaitWith is Wait with a custom judge of objects' status.
func WaitWith(ctx context.Context, c client.Reader, objs []*unstructured.Unstructured, opts Options) error {
	superseded := opts.Superseded
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
				next, why = append(next, o), append(why, Describe(o)+": not found yet")
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: %w", Describe(o), err)
			}
			res, err := compute(ctx, u, opts.Status)
			if err != nil {
				return fmt.Errorf("%s: %w", Describe(o), err)
			}
			switch res.Status {
			case status.CurrentStatus:
			case status.FailedStatus:
				return fmt.Errorf("%s failed: %s", Describe(o), res.Message)
			default:
				next, why = append(next, o), append(why, fmt.Sprintf("%s: %s", Describe(o), strings.TrimSpace(string(res.Status)+" "+res.Message)))
			}
		}
		if len(next) == 0 {
			return nil
		}
		pending = next
		if superseded != nil {
			if why := superseded(); why != "" {
				return &SupersededError{Why: why}
			}
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

func compute(ctx context.Context, u *unstructured.Unstructured, custom StatusFunc) (*status.Result, error) {
	if custom != nil {
		if res, ok := custom(ctx, u); ok {
			return res, nil
		}
	}
	if res, ok := unobserved(u); ok {
		return res, nil
	}
	return status.Compute(u)
}

// unobserved judges a GitOps object (Plumb's kinds and Flux's) that its controller has not yet
// observed in its current generation as InProgress. kstatus calls an object without
// status.observedGeneration or conditions Current, so a HelmRelease or Kustomization applied a
// moment before its controller wrote any status would pass a health check that it may then fail.
func unobserved(u *unstructured.Unstructured) (*status.Result, bool) {
	group := u.GroupVersionKind().Group
	if !strings.HasSuffix(group, ".plumb.dev") && !strings.HasSuffix(group, ".toolkit.fluxcd.io") {
		return nil, false
	}
	observed, found, err := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if err == nil && found && observed >= u.GetGeneration() {
		return nil, false
	}
	return &status.Result{
		Status:  status.InProgressStatus,
		Message: fmt.Sprintf("generation %d not yet observed by its controller", u.GetGeneration()),
	}, true
}

// Describe names an object as Kind/namespace/name.
func Describe(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s/%s/%s", o.GetKind(), ns, o.GetName())
	}
	return fmt.Sprintf("%s/%s", o.GetKind(), o.GetName())
}

// SupersededError ends a health wait that a newer revision made pointless.
type SupersededError struct{ Why string }

func (e *SupersededError) Error() string { return "health check canceled: " + e.Why }
