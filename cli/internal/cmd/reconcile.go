package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/ops"
)

func newReconcile(o *Options) *cobra.Command {
	var withSource bool
	c := &cobra.Command{
		Use:   "reconcile <KIND> <NAME>",
		Short: "Reconcile an object now and wait for the outcome",
		Long: `reconcile sets the reconcile request annotation on the object, as a webhook receiver does,
waits until its controller has handled the request, and shows the outcome. It exits 1 when the
object is not Ready afterwards.`,
		Example: `  plumb reconcile kustomization apps --with-source
  plumb reconcile gitrepository podinfo -n default`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := oneKind(args[0])
			if err != nil {
				return err
			}
			c, _, err := o.Client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.Timeout)
			defer cancel()
			obj, err := get(ctx, c, k, o.Namespace(), args[1])
			if err != nil {
				return err
			}
			if withSource {
				kind, ns, name, ok := kinds.SourceOf(obj)
				if !ok {
					return usagef("%s has no source", k.GVK.Kind)
				}
				sk, known := kinds.ByKind(kind)
				if !known {
					return fmt.Errorf("%s's source kind %s is not one of Plumb's", k.GVK.Kind, kind)
				}
				src, err := get(ctx, c, sk, ns, name)
				if err != nil {
					return err
				}
				if err := o.reconcileAndWait(ctx, c, src); err != nil {
					return err
				}
			}
			return o.reconcileAndWait(ctx, c, obj)
		},
	}
	c.Flags().BoolVar(&withSource, "with-source", false, "reconcile the object's source first")
	return c
}

// oneKind looks up a kind name that must name exactly one kind.
func oneKind(name string) (kinds.Kind, error) {
	ks, err := kinds.Lookup(name)
	if err != nil {
		return kinds.Kind{}, usageError{err}
	}
	if len(ks) != 1 {
		return kinds.Kind{}, usagef("%s names several kinds; name one, such as %s", name, ks[0].Names[1])
	}
	return ks[0], nil
}

func get(ctx context.Context, c client.Client, k kinds.Kind, ns, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.GVK)
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		return nil, notInstalled(k, err)
	}
	return u, nil
}

// reconcileAndWait requests a reconcile of obj and waits until it is handled; an object that is
// not Ready afterwards is an error.
func (o *Options) reconcileAndWait(ctx context.Context, c client.Client, obj *unstructured.Unstructured) error {
	what := fmt.Sprintf("%s %s/%s", obj.GetKind(), obj.GetNamespace(), obj.GetName())
	if kinds.Suspended(obj) {
		return fmt.Errorf("%s is suspended; plumb resume it first", what)
	}
	value, err := ops.RequestReconcile(ctx, c, obj)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "► reconciling %s\n", what)
	if err := waitHandled(ctx, c, obj, value); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return o.outcome(obj)
}

// outcome prints an object's state and fails when it is not Ready.
func (o *Options) outcome(obj *unstructured.Unstructured) error {
	what := fmt.Sprintf("%s %s/%s", obj.GetKind(), obj.GetNamespace(), obj.GetName())
	ready, msg := kinds.State(obj)
	if ready != "True" {
		return fmt.Errorf("%s is not ready (%s): %s", what, kinds.Reason(obj), msg)
	}
	line := "✔ " + what + ": " + msg
	if rev := kinds.Revision(obj); rev != "" {
		line += " (" + rev + ")"
	}
	fmt.Fprintln(o.Out, line)
	return nil
}

// waitHandled polls obj until status.lastHandledReconcileAt is value and its Ready condition
// is for the current generation.
func waitHandled(ctx context.Context, c client.Client, obj *unstructured.Unstructured, value string) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	late := fmt.Errorf("not handled in time (is its controller running? see plumb check)")
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			if ctx.Err() != nil {
				// The timeout ended the read itself: the same news as below.
				return late
			}
			return err
		}
		if kinds.LastHandled(obj) == value {
			return nil
		}
		select {
		case <-ctx.Done():
			return late
		case <-tick.C:
		}
	}
}

// waitApplied polls a Kustomization until it is Ready at revision.
func waitApplied(ctx context.Context, c client.Client, ks *unstructured.Unstructured, revision string, o *Options) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(ks), ks); err == nil {
			applied, _, _ := unstructured.NestedString(ks.Object, "status", "lastAppliedRevision")
			if ready, _ := kinds.State(ks); ready == "True" && applied == revision {
				return o.outcome(ks)
			}
		}
		select {
		case <-ctx.Done():
			_, msg := kinds.State(ks)
			return fmt.Errorf("the Kustomization %s/%s has not applied %s in time: %s", ks.GetNamespace(), ks.GetName(), revision, msg)
		case <-tick.C:
		}
	}
}
