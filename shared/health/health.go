// Package health waits for objects to become healthy as kstatus judges them, reading each with
// its own GET (a list per poll would make a thousand owners cost a million object reads). A
// caller that watches the objects (Options.Changed) reads them only when they change.
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
	// Known, when not nil, returns the object as the caller read or wrote it a moment ago (the
	// answer of an apply), or nil; the first poll judges that instead of reading the object.
	Known func(o *unstructured.Unstructured) *unstructured.Unstructured
	// Cached, when not nil, returns the object as a watch shows it now (its status up to date,
	// its spec summarised), or nil when the watch cannot vouch for it: the polls after the first
	// judge that instead of reading the object.
	Cached func(o *unstructured.Unstructured) *unstructured.Unstructured
	// Changed, when not nil, returns a channel that is closed when one of objs next changes, and
	// a function that stops watching. A poll then follows each change at once, and polls without
	// a change back off to ChangedBackoff: the reads that find nothing new are saved. A nil
	// channel means the objects cannot be watched now: the polls back off as without Changed.
	Changed func(ctx context.Context, objs []*unstructured.Unstructured) (<-chan struct{}, func())
}

// ChangedBackoff is the longest wait between polls when Options.Changed wakes the wait: it only
// guards against a watch that missed a change.
const ChangedBackoff = 30 * time.Second

// WaitWith is Wait with a custom judge of objects' status.
func WaitWith(ctx context.Context, c client.Reader, objs []*unstructured.Unstructured, opts Options) error {
	superseded := opts.Superseded
	pending := objs
	wait := 100 * time.Millisecond
	known := opts.Known
	if known == nil {
		known = opts.Cached
	}
	for {
		// Watch before reading: a change between the read and the wait still wakes it.
		changed, stop := (<-chan struct{})(nil), func() {}
		if opts.Changed != nil {
			changed, stop = opts.Changed(ctx, pending)
		}
		next, why, err := poll(ctx, c, pending, opts.Status, known)
		known = opts.Cached
		if err != nil || len(next) == 0 {
			stop()
			return err
		}
		pending = next
		if superseded != nil {
			if why := superseded(); why != "" {
				stop()
				return &SupersededError{Why: why}
			}
		}
		maxWait := 2 * time.Second
		if changed != nil {
			maxWait = ChangedBackoff
		}
		wait = min(wait, maxWait)
		select {
		case <-ctx.Done():
			stop()
			return TimedOut(why)
		case <-changed:
		case <-time.After(wait):
		}
		stop()
		wait = min(2*wait, maxWait)
	}
}

// Check judges each object once, as the first poll of WaitWith does (Options.Known, else
// Options.Cached, else a GET), and returns those not yet Current with why; an object that
// Failed is an error. A caller that does not hold a goroutine through a wait calls Check
// again when Options.Changed wakes it, and TimedOut when its time is up.
func Check(ctx context.Context, c client.Reader, objs []*unstructured.Unstructured, opts Options) (pending []*unstructured.Unstructured, why []string, _ error) {
	known := opts.Known
	if known == nil {
		known = opts.Cached
	}
	return poll(ctx, c, objs, opts.Status, known)
}

// TimedOut is the error of a wait that ran out of time with the objects described by why not
// yet Current.
func TimedOut(why []string) error {
	why = append([]string(nil), why...)
	sort.Strings(why)
	return fmt.Errorf("timed out waiting for %d object(s): %s", len(why), strings.Join(why, "; "))
}

// poll reads each pending object (or takes it from known) and returns those not yet Current,
// with why; an object that Failed is an error.
func poll(ctx context.Context, c client.Reader, pending []*unstructured.Unstructured, custom StatusFunc, known func(*unstructured.Unstructured) *unstructured.Unstructured) (next []*unstructured.Unstructured, why []string, _ error) {
	for _, o := range pending {
		u := (*unstructured.Unstructured)(nil)
		if known != nil {
			u = known(o)
		}
		var err error
		if u == nil {
			u = &unstructured.Unstructured{}
			u.SetGroupVersionKind(o.GroupVersionKind())
			err = c.Get(ctx, client.ObjectKeyFromObject(o), u)
		}
		if apierrors.IsNotFound(err) || err != nil && ctx.Err() != nil {
			next, why = append(next, o), append(why, Describe(o)+": not found yet")
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", Describe(o), err)
		}
		res, err := compute(ctx, u, custom)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", Describe(o), err)
		}
		switch res.Status {
		case status.CurrentStatus:
		case status.FailedStatus:
			return nil, nil, fmt.Errorf("%s failed: %s", Describe(o), res.Message)
		default:
			next, why = append(next, o), append(why, fmt.Sprintf("%s: %s", Describe(o), strings.TrimSpace(string(res.Status)+" "+res.Message)))
		}
	}
	return next, why, nil
}

// Compute judges one object as a health check does: kstatus, except that a Plumb or Flux object
// its controller has not yet observed in its current generation is InProgress.
func Compute(u *unstructured.Unstructured) (*status.Result, error) {
	return compute(context.Background(), u, nil)
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
