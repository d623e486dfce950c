package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	ssautil "github.com/fluxcd/pkg/ssa/utils"
	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/localdir"
	"github.com/plumb-dev/plumb/shared/kustomize"
	"github.com/plumb-dev/plumb/shared/redact"
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
	opts, err := kustomize.OptionsFor(ctx, c, ks, false)
	if err != nil {
		return err
	}
	opts.Path = ""
	tree, err := localdir.Load(local)
	if err != nil {
		return err
	}
	res, err := tree.Build(opts)
	if err != nil {
		return errors.New(redact.String(err.Error(), opts.Secrets))
	}
	rm, _, err := install.ManagerAs(cfg, "apply-controller", applyv1.GroupVersion.Group)
	if err != nil {
		return err
	}
	changed := false
	built := map[string]bool{}
	for _, obj := range res.Objects {
		built[inventoryID(obj)] = true
		entry, live, merged, err := rm.Diff(ctx, obj, kustomize.DiffOptions(ks))
		if err != nil {
			return errors.New(redact.String(err.Error(), opts.Secrets))
		}
		switch entry.Action {
		case ssa.CreatedAction:
			changed = true
			fmt.Fprintf(o.Out, "► %s created\n", entry.Subject)
		case ssa.ConfiguredAction:
			changed = true
			fmt.Fprintf(o.Out, "► %s changed\n", entry.Subject)
			d, err := unifiedDiff(live, merged, opts.Secrets)
			if err != nil {
				return err
			}
			fmt.Fprint(o.Out, d)
		}
	}
	if ks.Spec.Prune && ks.Status.Inventory != nil {
		var gone []string
		for _, e := range ks.Status.Inventory.Entries {
			if !built[e.ID] && !pruneDisabled(ctx, c, e.ID, e.Version) {
				gone = append(gone, e.ID)
			}
		}
		sort.Strings(gone)
		for _, id := range gone {
			changed = true
			fmt.Fprintf(o.Out, "► %s deleted\n", subjectOf(id))
		}
	}
	if changed {
		return errDifferences
	}
	fmt.Fprintln(o.ErrOut, "no changes")
	return nil
}

// unifiedDiff is the YAML diff of the live object and the result of applying, with the values
// of Secrets and of the postBuild Secrets masked.
func unifiedDiff(live, merged *unstructured.Unstructured, secrets []string) (string, error) {
	text := func(o *unstructured.Unstructured) (string, error) {
		if o == nil {
			return "", nil
		}
		o = o.DeepCopy()
		unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
		unstructured.RemoveNestedField(o.Object, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(o.Object, "metadata", "generation")
		unstructured.RemoveNestedField(o.Object, "status")
		if o.GetKind() == "Secret" {
			o.SetAnnotations(nil) // kubectl's last-applied-configuration holds the data
			for _, field := range []string{"data", "stringData"} {
				if m, ok, _ := unstructured.NestedMap(o.Object, field); ok {
					for k, v := range m {
						m[k] = fmt.Sprintf("***(%d bytes)", len(fmt.Sprint(v)))
					}
					_ = unstructured.SetNestedMap(o.Object, m, field)
				}
			}
		}
		b, err := yaml.Marshal(o.Object)
		return redact.String(string(b), secrets), err
	}
	a, err := text(live)
	if err != nil {
		return "", err
	}
	b, err := text(merged)
	if err != nil {
		return "", err
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: "cluster", ToFile: "local", Context: 3})
}

// pruneDisabled says whether the live object of an inventory entry is marked to stay when it
// leaves the build.
func pruneDisabled(ctx context.Context, c client.Client, id, version string) bool {
	parts := strings.Split(id, "_")
	if len(parts) != 4 {
		return false
	}
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(strings.TrimPrefix(parts[2]+"/"+version, "/"))
	u.SetKind(parts[3])
	if err := c.Get(ctx, client.ObjectKey{Namespace: parts[0], Name: parts[1]}, u); err != nil {
		return false
	}
	return ssautil.AnyInMetadata(u, applyv1.PruneDisabledSelector())
}

// inventoryID is an object's id in a Kustomization's inventory: namespace_name_group_kind.
func inventoryID(o *unstructured.Unstructured) string {
	return strings.Join([]string{o.GetNamespace(), o.GetName(), o.GroupVersionKind().Group, o.GetKind()}, "_")
}

// subjectOf turns an inventory id into Kind/namespace/name.
func subjectOf(id string) string {
	parts := strings.Split(id, "_") // names have no "_": they are DNS subdomains
	if len(parts) != 4 {
		return id
	}
	ns, name, kind := parts[0], parts[1], parts[3]
	if ns == "" {
		return kind + "/" + name
	}
	return kind + "/" + ns + "/" + name
}
