package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/ops"
	"github.com/plumb-dev/plumb/shared/health"
	"github.com/plumb-dev/plumb/shared/reconcile"
)

// maxEvents is how many Events the timeline shows, newest first.
const maxEvents = 50

// inventoryPageSize bounds the objects whose health one page reads (one GET each).
const inventoryPageSize = 50

type field struct {
	Name, Value string
	Block       bool
}

type condition struct {
	Type, Status, Reason, Message string
	Since                         time.Time
}

type table struct {
	Columns []string
	Rows    [][]string
}

type eventRow struct {
	Type, Reason, Message, Revision string
	Count                           int32
	Seen                            time.Time
}

type link struct {
	Text, Href string
	State      state
}

type actions struct {
	Reconcile, WithSource, Suspend, Resume bool
	// Why there are none, when there are none.
	Why string
}

func (a actions) Any() bool { return a.Reconcile || a.WithSource || a.Suspend || a.Resume }

type invItem struct {
	Ref, Href, Health, Class, Message string
}

type inventory struct {
	Title      string
	Total      int
	Items      []invItem
	Err        string
	Page       int
	Pages      int
	Prev, Next string
}

type objectPage struct {
	base
	Key, Href, Component string
	Row                  row
	Generation, Observed int64
	Spec                 []field
	Conditions           []condition
	History              *table
	Events               []eventRow
	OlderEvents          int
	Source               *link
	DependsOn            []link
	Inventory            *inventory
	Actions              actions
	Progress             string
	Diff                 bool
	// LiveKeys are the objects whose changes refresh the page: it, its source and dependencies.
	LiveKeys string
}

// lookup finds the object a path names in the store, or answers 404.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (kinds.Kind, *unstructured.Unstructured, bool) {
	kind, ns, name := r.PathValue("kind"), r.PathValue("ns"), r.PathValue("name")
	k, ok := kinds.ByKind(kind)
	if !ok || k.GVK.Group != r.PathValue("group") {
		s.errorPage(w, r, http.StatusNotFound, fmt.Sprintf("%s/%s is not one of Plumb's kinds.", r.PathValue("group"), kind))
		return k, nil, false
	}
	u := s.store.Get(kind, ns, name)
	if u == nil {
		why := "it does not exist, or you may not see it"
		if !s.store.Watched(kind) {
			why = "its kind is not installed in this cluster, or you may not list it"
		}
		s.errorPage(w, r, http.StatusNotFound, fmt.Sprintf("%s %s/%s is not here: %s.", kind, ns, name, why))
		return k, nil, false
	}
	return k, u, true
}

func (s *Server) serveObject(w http.ResponseWriter, r *http.Request) {
	k, u, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	p := s.objectPage(ctx, r, k, u)
	frag := r.URL.Query().Get("fragment")
	if frag == "" || frag == "inventory" {
		page, _ := strconv.Atoi(r.URL.Query().Get("inv"))
		p.Inventory = s.inventory(ctx, u, page)
	}
	s.render(w, r, "object", p)
}

func (s *Server) objectPage(ctx context.Context, r *http.Request, k kinds.Kind, u *unstructured.Unstructured) objectPage {
	rw := rowOf(u)
	p := objectPage{base: s.base(u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName(), ""), Key: rw.Key, Href: rw.Href, Component: k.Component,
		Row: rw, Generation: u.GetGeneration(), Diff: u.GetKind() == "Kustomization"}
	p.Observed, _, _ = unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	p.Spec = specFields(u)
	for _, c := range kinds.Conditions(u) {
		p.Conditions = append(p.Conditions, condition{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime.Time})
	}
	p.History = history(u)
	events := s.store.Events(rw.Key)
	if len(events) > maxEvents {
		p.OlderEvents, events = len(events)-maxEvents, events[:maxEvents]
	}
	for _, e := range events {
		p.Events = append(p.Events, eventRow{Type: e.Type, Reason: e.Reason, Message: e.Message,
			Revision: e.Annotations["plumb.dev/revision"], Count: max(e.Count, 1), Seen: ops.LastSeen(*e)})
	}
	live := []string{rw.Key}
	var src *unstructured.Unstructured
	if kind, ns, name, ok := kinds.SourceOf(u); ok {
		p.Source = s.linkTo(kind, ns, name)
		if sk, ok := kinds.ByKind(kind); ok {
			src = s.store.Get(sk.GVK.Kind, ns, name)
			live = append(live, objectKey(sk.GVK.Group, kind, ns, name))
		}
	}
	for _, d := range kinds.DependsOn(u) {
		if l := s.linkTo(d.Kind, d.Namespace, d.Name); l != nil {
			p.DependsOn = append(p.DependsOn, *l)
		}
		if dk, ok := kinds.ByKind(d.Kind); ok {
			live = append(live, objectKey(dk.GVK.Group, d.Kind, d.Namespace, d.Name))
		}
	}
	p.LiveKeys = strings.Join(live, " ")
	p.Actions = s.actionsFor(ctx, r, k, u, src)
	p.Progress = progress(k, u, src)
	return p
}

// linkTo links to an object of the store, saying when it is not there.
func (s *Server) linkTo(kind, ns, name string) *link {
	k, ok := kinds.ByKind(kind)
	if !ok {
		return &link{Text: kind + " " + ns + "/" + name + " (not one of Plumb's kinds)"}
	}
	o := s.store.Get(kind, ns, name)
	if o == nil {
		return &link{Text: kind + " " + ns + "/" + name + " (not found)", State: stateUnknown}
	}
	return &link{Text: kind + " " + ns + "/" + name, Href: hrefOf(objectKey(k.GVK.Group, kind, ns, name)), State: stateOf(o)}
}

// progress says where a reconcile request stands: waiting for the source's controller, for the
// object's, or handled.
func progress(k kinds.Kind, u, src *unstructured.Unstructured) string {
	requested := func(o *unstructured.Unstructured) string {
		v, _ := reconcile.RequestedAt(o.GetAnnotations())
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return duration.HumanDuration(time.Since(t)) + " ago"
		}
		return "(" + v + ")"
	}
	if src != nil && pending(src) {
		sk, _ := kinds.ByKind(src.GetKind())
		return fmt.Sprintf("Reconcile of the source %s %s/%s requested %s; waiting for %s to handle it.", src.GetKind(), src.GetNamespace(), src.GetName(), requested(src), sk.Component)
	}
	if pending(u) {
		return fmt.Sprintf("Reconcile requested %s; waiting for %s to handle it.", requested(u), k.Component)
	}
	if v := kinds.LastHandled(u); v != "" {
		return fmt.Sprintf("The last reconcile request (%s) was handled.", v)
	}
	return ""
}

// specFields lists spec's top-level fields, short values inline and the rest as YAML.
func specFields(u *unstructured.Unstructured) []field {
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	names := make([]string, 0, len(spec))
	for n := range spec {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]field, 0, len(names))
	for _, n := range names {
		switch v := spec[n].(type) {
		case map[string]any, []any:
			b, err := yaml.Marshal(v)
			if err != nil {
				continue
			}
			out = append(out, field{Name: n, Value: strings.TrimSpace(string(b)), Block: true})
		default:
			out = append(out, field{Name: n, Value: fmt.Sprint(v)})
		}
	}
	return out
}

// history is a Kustomization's runs or a HelmRelease's releases, newest first.
func history(u *unstructured.Unstructured) *table {
	h, _, _ := unstructured.NestedSlice(u.Object, "status", "history")
	if len(h) == 0 {
		return nil
	}
	str := func(m map[string]any, k string) string {
		if v, ok := m[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	t := &table{}
	switch u.GetKind() {
	case "Kustomization":
		t.Columns = []string{"Revision", "Result", "Duration", "Finished"}
		for _, e := range h {
			m, _ := e.(map[string]any)
			t.Rows = append(t.Rows, []string{str(m, "revision"), str(m, "result"), str(m, "duration"), str(m, "time")})
		}
	case "HelmRelease":
		t.Columns = []string{"Version", "Chart", "App version", "Status", "Deployed", "Config digest"}
		for _, e := range h {
			m, _ := e.(map[string]any)
			t.Rows = append(t.Rows, []string{str(m, "version"), str(m, "chartName") + " " + str(m, "chartVersion"), str(m, "appVersion"),
				str(m, "status"), str(m, "lastDeployed"), str(m, "configDigest")})
		}
	default:
		return nil
	}
	return t
}

// inventory lists what a Kustomization or HelmRelease applied, a page at a time, with each
// object's health: Plumb objects from the store, others read with one GET each and judged by
// kstatus.
func (s *Server) inventory(ctx context.Context, u *unstructured.Unstructured, page int) *inventory {
	var refs []ops.Ref
	inv := &inventory{}
	switch u.GetKind() {
	case "Kustomization":
		inv.Title = "Inventory"
		for _, e := range ops.Inventory(u) {
			if r, ok := ops.ParseID(e.ID, e.Version); ok {
				refs = append(refs, r)
			}
		}
	case "HelmRelease":
		inv.Title = "Objects of the current Helm release"
		var err error
		if refs, err = ops.ReleaseObjects(ctx, s.cfg.Client, u); err != nil {
			inv.Err = "The release's objects are unreadable: " + describeErr(err)
		}
	default:
		return nil
	}
	inv.Total = len(refs)
	inv.Pages = max(1, (len(refs)+inventoryPageSize-1)/inventoryPageSize)
	inv.Page = min(max(page, 1), inv.Pages)
	from, to := (inv.Page-1)*inventoryPageSize, min(inv.Page*inventoryPageSize, len(refs))
	if inv.Page > 1 {
		inv.Prev = fmt.Sprintf("?inv=%d#inventory", inv.Page-1)
	}
	if inv.Page < inv.Pages {
		inv.Next = fmt.Sprintf("?inv=%d#inventory", inv.Page+1)
	}
	inv.Items = make([]invItem, to-from)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, ref := range refs[from:to] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			inv.Items[i] = s.healthOf(ctx, ref)
		}()
	}
	wg.Wait()
	return inv
}

// healthOf judges one applied object.
func (s *Server) healthOf(ctx context.Context, ref ops.Ref) invItem {
	it := invItem{Ref: ref.String()}
	if k, ok := kinds.ByKind(ref.Kind); ok && k.GVK.Group == ref.Group {
		if o := s.store.Get(ref.Kind, ref.Namespace, ref.Name); o != nil {
			st := stateOf(o)
			_, msg := kinds.State(o)
			it.Href, it.Health, it.Class, it.Message = hrefOf(keyOf(o)), st.Symbol()+" "+string(st), st.Class(), oneLine(msg, 160)
			return it
		}
	}
	if ref.Group == "" && ref.Kind == "Secret" {
		// A Secret's health is its existence: read its metadata, never its data.
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(ref.GVK())
		err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, m)
		switch {
		case apierrors.IsNotFound(err):
			it.Health, it.Class, it.Message = "✖ NotFound", stateFailed.Class(), "not in the cluster"
		case err != nil:
			it.Health, it.Class, it.Message = "? Unknown", stateUnknown.Class(), describeErr(err)
		default:
			it.Health, it.Class = "✔ Current", stateReady.Class()
		}
		return it
	}
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(ref.GVK())
	err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, o)
	switch {
	case apierrors.IsNotFound(err):
		it.Health, it.Class, it.Message = "✖ NotFound", stateFailed.Class(), "not in the cluster"
		return it
	case err != nil:
		it.Health, it.Class, it.Message = "? Unknown", stateUnknown.Class(), describeErr(err)
		return it
	}
	res, err := health.Compute(o)
	if err != nil {
		it.Health, it.Class, it.Message = "? Unknown", stateUnknown.Class(), err.Error()
		return it
	}
	it.Message = oneLine(res.Message, 160)
	switch res.Status {
	case status.CurrentStatus:
		it.Health, it.Class = "✔ Current", stateReady.Class()
	case status.FailedStatus:
		it.Health, it.Class = "✖ Failed", stateFailed.Class()
	case status.InProgressStatus:
		it.Health, it.Class = "↻ InProgress", stateReconciling.Class()
	default:
		it.Health, it.Class = "? "+string(res.Status), stateUnknown.Class()
	}
	return it
}

// describeErr turns an API error into a sentence without the request's details.
func describeErr(err error) string {
	switch {
	case apierrors.IsForbidden(err):
		return "you may not read it (RBAC)"
	case apierrors.IsNotFound(err):
		return "not found"
	}
	return oneLine(err.Error(), 200)
}
