package cmd

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/plumb-dev/plumb/cli/internal/ops"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
)

func newEvents(o *Options) *cobra.Command {
	var all bool
	var forObj string
	c := &cobra.Command{
		Use:   "events",
		Short: "Show the events of Plumb objects, oldest first",
		Example: `  plumb events -n apps
  plumb events --for Kustomization/apps
  plumb events -A`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var kind, name string
			if forObj != "" {
				var ok bool
				if kind, name, ok = strings.Cut(forObj, "/"); !ok || kind == "" || name == "" {
					return usagef("--for %q: write KIND/NAME, e.g. Kustomization/apps", forObj)
				}
				k, err := oneKind(kind)
				if err != nil {
					return err
				}
				kind = k.GVK.Kind
			}
			c, _, err := o.Client()
			if err != nil {
				return err
			}
			ns := o.Namespace()
			if all {
				ns = ""
			}
			evs, err := ops.Events(cmd.Context(), c, ns, kind, name)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				fmt.Fprintln(o.ErrOut, "no events")
				return nil
			}
			tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			head := "LAST SEEN\tTYPE\tREASON\tOBJECT\tMESSAGE"
			if ns == "" {
				head = "NAMESPACE\t" + head
			}
			fmt.Fprintln(tw, head)
			for _, e := range evs {
				row := fmt.Sprintf("%s\t%s\t%s\t%s/%s\t%s", duration.HumanDuration(time.Since(ops.LastSeen(e))), e.Type, e.Reason,
					e.InvolvedObject.Kind, e.InvolvedObject.Name, oneLineString(e.Message))
				if ns == "" {
					row = e.Namespace + "\t" + row
				}
				fmt.Fprintln(tw, row)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVarP(&all, "all-namespaces", "A", false, "events of all namespaces")
	c.Flags().StringVar(&forObj, "for", "", "only the events of KIND/NAME")
	return c
}
