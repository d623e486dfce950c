package cmd

import (
	"context"
	"fmt"

	"github.com/plumb-dev/plumb/cli/internal/ops"
	"github.com/spf13/cobra"
)

// newSuspend is `plumb suspend` (suspend true) or `plumb resume`.
func newSuspend(o *Options, suspend bool) *cobra.Command {
	use, short := "resume", "Resume a suspended object and wait for its reconcile"
	if suspend {
		use, short = "suspend", "Stop reconciling an object until it is resumed"
	}
	return &cobra.Command{
		Use:   use + " <KIND> <NAME>",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := oneKind(args[0])
			if err != nil {
				return err
			}
			if !k.Suspendable {
				return usagef("%s cannot be suspended", k.GVK.Kind)
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
			if err := ops.SetSuspend(ctx, c, obj, suspend); err != nil {
				return err
			}
			if suspend {
				fmt.Fprintf(o.Out, "✔ %s %s/%s suspended\n", k.GVK.Kind, obj.GetNamespace(), obj.GetName())
				return nil
			}
			return o.reconcileAndWait(ctx, c, obj)
		},
	}
}
