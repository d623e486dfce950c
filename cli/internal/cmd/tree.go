package cmd

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/ops"
)

func newTree(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "tree",
		Short: "Show what a Kustomization applied, as a tree",
	}
	c.AddCommand(&cobra.Command{
		Use:     "kustomization <NAME>",
		Aliases: []string{"ks"},
		Short:   "The inventory of a Kustomization, nested Kustomizations and HelmReleases expanded",
		Long: `tree shows what a Kustomization applied (its status.inventory), expanding the Kustomizations
it applied into theirs and the HelmReleases into the objects of their current Helm release (read
from the release's storage Secret, which needs read access to Secrets there).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := o.Client()
			if err != nil {
				return err
			}
			k, _ := kinds.ByKind("Kustomization")
			root, err := get(cmd.Context(), c, k, o.Namespace(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "Kustomization/%s/%s%s\n", root.GetNamespace(), root.GetName(), note(root))
			return printInventory(cmd.Context(), c, o.Out, root, "", map[string]bool{root.GetNamespace() + "/" + root.GetName(): true})
		},
	})
	return c
}

// note is what a tree line says about a Plumb object: its revision and, unless Ready, its state.
func note(o *unstructured.Unstructured) string {
	var parts []string
	if rev := kinds.Revision(o); rev != "" {
		parts = append(parts, rev)
	}
	if ready, msg := kinds.State(o); ready != "True" {
		parts = append(parts, "Ready="+ready+" "+kinds.Reason(o)+": "+oneLineString(msg))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// printInventory prints the entries of a Kustomization's inventory under prefix, recursing into
// the Kustomizations it applied; seen stops a loop.
func printInventory(ctx context.Context, c client.Client, w io.Writer, ks *unstructured.Unstructured, prefix string, seen map[string]bool) error {
	entries := ops.Inventory(ks)
	for i, e := range entries {
		last := i == len(entries)-1
		branch, indent := "├── ", "│   "
		if last {
			branch, indent = "└── ", "    "
		}
		ref, ok := ops.ParseID(e.ID, e.Version)
		if !ok {
			fmt.Fprintf(w, "%s%s%s\n", prefix, branch, e.ID)
			continue
		}
		ns, name, group, kind := ref.Namespace, ref.Name, ref.Group, ref.Kind
		line := ref.String()
		k, plumbKind := kinds.ByKind(kind)
		if !plumbKind || k.GVK.Group != group {
			fmt.Fprintf(w, "%s%s%s\n", prefix, branch, line)
			continue
		}
		child, err := get(ctx, c, k, ns, name)
		switch {
		case apierrors.IsNotFound(err):
			fmt.Fprintf(w, "%s%s%s (not found)\n", prefix, branch, line)
			continue
		case err != nil:
			return err
		}
		fmt.Fprintf(w, "%s%s%s%s\n", prefix, branch, line, note(child))
		switch {
		case kind == "Kustomization" && !seen[ns+"/"+name]:
			seen[ns+"/"+name] = true
			if err := printInventory(ctx, c, w, child, prefix+indent, seen); err != nil {
				return err
			}
		case kind == "HelmRelease":
			objs, err := ops.ReleaseObjects(ctx, c, child)
			if err != nil {
				fmt.Fprintf(w, "%s%s└── (release objects unreadable: %v)\n", prefix, indent, err)
				continue
			}
			for j, o := range objs {
				b := "├── "
				if j == len(objs)-1 {
					b = "└── "
				}
				fmt.Fprintf(w, "%s%s%s%s\n", prefix, indent, b, o)
			}
		}
	}
	return nil
}
