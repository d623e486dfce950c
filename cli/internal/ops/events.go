package ops

import (
	"context"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
)

// EventSelector is the field selector of the Events of one Plumb kind: the API server filters
// them, so that nobody lists every Event of the cluster (docs/architecture.md).
func EventSelector(k kinds.Kind) map[string]string {
	return map[string]string{"involvedObject.kind": k.GVK.Kind, "involvedObject.apiVersion": k.GVK.GroupVersion().String()}
}

// Events lists the Events of Plumb objects in ns (all when empty), of one kind when kind is set
// and of one object when name is too, oldest first: one list per kind, filtered by the API
// server.
func Events(ctx context.Context, c client.Reader, ns, kind, name string) ([]corev1.Event, error) {
	var evs []corev1.Event
	for _, k := range kinds.All {
		if kind != "" && k.GVK.Kind != kind {
			continue
		}
		fields := client.MatchingFields(EventSelector(k))
		if name != "" {
			fields["involvedObject.name"] = name
		}
		var list corev1.EventList
		if err := c.List(ctx, &list, client.InNamespace(ns), fields); err != nil {
			return nil, err
		}
		evs = append(evs, list.Items...)
	}
	sort.SliceStable(evs, func(i, j int) bool { return LastSeen(evs[i]).Before(LastSeen(evs[j])) })
	return evs, nil
}

// LastSeen is when an event last happened, whichever of its times is set.
func LastSeen(e corev1.Event) time.Time {
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
