package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/localdir"
	"github.com/plumb-dev/plumb/cli/internal/ops"
)

// errDifferences ends a diff that found differences: exit code 1, no error line (as kubectl
// diff and diff(1) do).
var errDifferences = exitError{code: 1}

func newDiff(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "diff",
		Short: "Show what applying local changes would change in the cluster",
	}
	c.AddCommand(newDiffKustomization(o))
	return c
}

func newDiffKustomization(o *Options) *cobra.Command {
	var local string
	c := &cobra.Command{
		Use:   "kustomization <NAME> --path <FOLDER>",
		Short: "Build a local folder as the Kustomization would and diff it against the cluster",
		Long: `diff kustomization builds --path (the local copy of the folder the Kustomization's spec.path
names) with the Kustomization's settings — target namespace, name prefix and suffix, patches,
images, components, postBuild variables — exactly as apply-controller builds, then asks the API
server for a server-side dry-run apply of each object and prints what would change: objects
created, a unified diff of those changed (Secret values masked), and the objects of the
inventory that would be pruned. It exits 0 when nothing would change, 1 when something would,
and 2 on an error.`,
		Aliases: []string{"ks"},
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if local == "" {
				return usagef("--path is required: the local folder to build")
			}
			if st, err := os.Stat(local); err != nil || !st.IsDir() {
				return usagef("--path %q is not a folder", local)
			}
			err := o.diffKustomization(cmd.Context(), args[0], local)
			var ee exitError
			if err == nil || errors.As(err, &ee) {
				return err
			}
			return exitError{code: 2, err: err}
		},
	}
	c.Flags().StringVar(&local, "path", "", "local folder to build")
	return c
}

func (o *Options) diffKustomization(ctx context.Context, name, local string) error {
	c, cfg, err := o.Client()
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(applyv1.GroupVersion.WithKind(applyv1.KustomizationKind))
	if err := c.Get(ctx, client.ObjectKey{Namespace: o.Namespace(), Name: name}, u); err != nil {
		k, _ := kinds.ByKind(applyv1.KustomizationKind)
		return notInstalled(k, err)
	}
	ks := &applyv1.Kustomization{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ks); err != nil {
		return err
	}
	tree, err := localdir.Load(local)
	if err != nil {
		return err
	}
	changes, err := ops.DiffKustomization(ctx, c, cfg, ks, tree, true)
	if err != nil {
		return err
	}
	for _, ch := range changes {
		fmt.Fprintf(o.Out, "► %s %s\n", ch.Subject, ch.Action)
		if ch.Action == ops.Changed {
			d, err := ch.Unified()
			if err != nil {
				return err
			}
			fmt.Fprint(o.Out, d)
		}
	}
	if len(changes) > 0 {
		return errDifferences
	}
	fmt.Fprintln(o.ErrOut, "no changes")
	return nil
}
