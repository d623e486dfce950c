package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
)

func newGet(o *Options) *cobra.Command {
	var all, verified bool
	var output string
	c := &cobra.Command{
		Use:   "get <sources|kustomizations|helmreleases|images|alerts|all|KIND> [NAME]",
		Short: "Show Plumb objects: ready or not, why, and at which revision",
		Example: `  plumb get all -A
  plumb get kustomizations -n apps
  plumb get gitrepository podinfo -o yaml
  plumb get sources -A --verified`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := kinds.Lookup(args[0])
			if err != nil {
				return usageError{err}
			}
			if output != "" && output != "yaml" && output != "json" {
				return usagef("-o %s: use yaml or json", output)
			}
			if verified && !anySource(ks) {
				return usagef("--verified lists sources; %s has none", args[0])
			}
			name := ""
			if len(args) == 2 {
				if len(ks) > 1 {
					return usagef("a name needs one kind, not %s", args[0])
				}
				name = args[1]
				if all {
					return usagef("a name and --all-namespaces do not go together; use -n")
				}
			}
			c, _, err := o.Client()
			if err != nil {
				return err
			}
			ns := o.Namespace()
			if all {
				ns = ""
			}
			objs, err := list(cmd.Context(), c, ks, ns, name)
			if err != nil {
				return err
			}
			if verified {
				objs = onlyVerified(objs)
			}
			switch output {
			case "yaml", "json":
				return printObjects(o.Out, objs, output)
			}
			if len(objs) == 0 {
				where := "namespace " + ns
				if ns == "" {
					where = "any namespace"
				}
				what := args[0]
				if verified {
					what = "verified " + what
				}
				fmt.Fprintf(o.ErrOut, "no %s in %s\n", what, where)
				return nil
			}
			return printTable(o.Out, objs, ns == "", len(ks) > 1, anySource(ks))
		},
	}
	c.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	c.Flags().StringVarP(&output, "output", "o", "", "yaml or json instead of a table")
	c.Flags().BoolVar(&verified, "verified", false, "only sources whose signature verified (SourceVerified=True)")
	return c
}

// anySource reports whether a kind of ks is a source, which has the VERIFIED column.
func anySource(ks []kinds.Kind) bool {
	for _, k := range ks {
		if k.Category == "sources" {
			return true
		}
	}
	return false
}

// onlyVerified keeps the objects whose SourceVerified condition is True.
func onlyVerified(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if _, ok := kinds.Verified(o); ok {
			out = append(out, o)
		}
	}
	return out
}

// list reads the objects of the kinds in ns (all when empty), or the one named. Kinds the
// cluster does not serve are left out of a list of several, and an error for one.
func list(ctx context.Context, c client.Client, ks []kinds.Kind, ns, name string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	served := 0
	for _, k := range ks {
		if name != "" {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(k.GVK)
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
				return nil, notInstalled(k, err)
			}
			return []*unstructured.Unstructured{u}, nil
		}
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(k.GVK.GroupVersion().WithKind(k.GVK.Kind + "List"))
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			if apimeta.IsNoMatchError(err) && len(ks) > 1 {
				continue
			}
			return nil, notInstalled(k, err)
		}
		served++
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	if served == 0 && len(ks) > 1 {
		return nil, errors.New("none of these kinds is installed (see plumb check, plumb install)")
	}
	return out, nil
}

// notInstalled names the component to install when the cluster does not know a kind.
func notInstalled(k kinds.Kind, err error) error {
	if apimeta.IsNoMatchError(err) {
		return fmt.Errorf("%s is not installed in this cluster: plumb install --components %s", k.GVK.Kind, k.Component)
	}
	return err
}

func printObjects(w io.Writer, objs []*unstructured.Unstructured, format string) error {
	var doc any
	if len(objs) == 1 {
		doc = objs[0].Object
	} else {
		items := make([]any, len(objs))
		for i, o := range objs {
			items[i] = o.Object
		}
		doc = map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// printTable prints one line per object; withVerified adds the VERIFIED column of sources.
func printTable(w io.Writer, objs []*unstructured.Unstructured, withNamespace, withKind, withVerified bool) error {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var head []string
	if withNamespace {
		head = append(head, "NAMESPACE")
	}
	head = append(head, "NAME", "READY", "REASON", "STATUS", "REVISION", "SUSPENDED")
	if withVerified {
		head = append(head, "VERIFIED")
	}
	head = append(head, "AGE")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, o := range objs {
		var row []string
		if withNamespace {
			row = append(row, o.GetNamespace())
		}
		name := o.GetName()
		if withKind {
			name = o.GetKind() + "/" + name
		}
		ready, msg := kinds.State(o)
		row = append(row, name, ready, kinds.Reason(o), oneLineString(msg), kinds.Revision(o), fmt.Sprint(kinds.Suspended(o)))
		if withVerified {
			v, _ := kinds.Verified(o)
			row = append(row, oneLineString(v))
		}
		row = append(row, duration.HumanDuration(time.Since(o.GetCreationTimestamp().Time)))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func oneLineString(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
