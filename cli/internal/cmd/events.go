package cmd

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
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
			// One list per Plumb kind, filtered by the API server: never every Event of the
			// cluster.
			var evs []corev1.Event
			for _, k := range kinds.All {
				if kind != "" && k.GVK.Kind != kind {
					continue
				}
				fields := client.MatchingFields{"involvedObject.kind": k.GVK.Kind, "involvedObject.apiVersion": k.GVK.GroupVersion().String()}
				if name != "" {
					fields["involvedObject.name"] = name
				}
				var list corev1.EventList
				if err := c.List(cmd.Context(), &list, client.InNamespace(ns), fields); err != nil {
					return err
				}
				evs = append(evs, list.Items...)
			}
			sort.SliceStable(evs, func(i, j int) bool { return lastSeen(evs[i]).Before(lastSeen(evs[j])) })
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
				row := fmt.Sprintf("%s\t%s\t%s\t%s/%s\t%s", duration.HumanDuration(time.Since(lastSeen(e))), e.Type, e.Reason,
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

// lastSeen is when an event last happened, whichever of its times is set.
func lastSeen(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
