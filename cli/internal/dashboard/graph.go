package dashboard

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/ops"
)

// The relations the graph draws, from the object that feeds to the object fed.
const (
	relSource    = "source"    // a source's artifact → its consumer
	relDependsOn = "dependsOn" // a dependency → the object that waits for it
	relApplies   = "applies"   // a Kustomization or HelmRelease → what it applied
	relImage     = "image"     // ImageRepository → ImagePolicy → ImageUpdateAutomation
	relPushes    = "pushes"    // ImageUpdateAutomation → the Git repository it commits to
	relNamespace = "namespace" // collapsed view: objects of one namespace → another's
)

// gnode is a box of the flow graph: a Plumb object, the objects of one kind and namespace an
// object applied, or (collapsed) a namespace.
type gnode struct {
	ID, Kind, Namespace, Name string
	// Title is the small first line, Label the second.
	Title, Label string
	State        state
	Href         string
	// Failing: the object fails; Blocked: it depends on one that does (the red path).
	Failing, Blocked bool
	BlockedBy        string
	// Count is how many objects a box stands for: applied objects, or condensed siblings.
	Count int
	Layer int
	X, Y  int
	order float64
}

// Status is the node's third line.
func (n *gnode) Status() string {
	if n.State == "" {
		return ""
	}
	s := n.State.Symbol() + " " + string(n.State)
	if n.Blocked && !n.Failing {
		s += " · blocked"
	}
	return s
}

// Describe is the node's full text, for its tooltip and screen readers.
func (n *gnode) Describe() string {
	s := n.Title + " " + n.Label
	if n.State != "" {
		s += ": " + string(n.State)
	}
	if n.Blocked && !n.Failing {
		s += "; blocked by " + n.BlockedBy
	}
	return s
}

type gedge struct {
	From, To, Rel string
	// Red: the edge is on a path from a failing object.
	Red bool
	// Path is the SVG path, set by the layout.
	Path string
}

type graph struct {
	Nodes []*gnode
	Edges []*gedge
	byID  map[string]*gnode
	seen  map[string]bool
}

func newGraph() *graph { return &graph{byID: map[string]*gnode{}, seen: map[string]bool{}} }

func (g *graph) add(n *gnode) *gnode {
	if old, ok := g.byID[n.ID]; ok {
		return old
	}
	g.byID[n.ID] = n
	g.Nodes = append(g.Nodes, n)
	return n
}

func (g *graph) edge(from, to, rel string) {
	id := from + "→" + to
	if from == to || g.seen[id] {
		return
	}
	g.seen[id] = true
	g.Edges = append(g.Edges, &gedge{From: from, To: to, Rel: rel})
}

// inGraph: the notification kinds are not part of the flow.
func inGraph(kind string) bool {
	k, ok := kinds.ByKind(kind)
	return ok && k.Category != "alerts"
}

func objectNode(u *unstructured.Unstructured) *gnode {
	key := keyOf(u)
	st := stateOf(u)
	return &gnode{ID: key, Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
		Title: u.GetKind() + " · " + u.GetNamespace(), Label: u.GetName(), State: st, Href: hrefOf(key), Failing: st.Failing()}
}

// refNode is the node of an object that something refers to: the object from the store, or a
// box saying it is not there.
func (g *graph) refNode(objs map[string]*unstructured.Unstructured, kind, ns, name string) string {
	k, ok := kinds.ByKind(kind)
	if !ok {
		return ""
	}
	key := objectKey(k.GVK.Group, kind, ns, name)
	if u, ok := objs[key]; ok {
		return g.add(objectNode(u)).ID
	}
	return g.add(&gnode{ID: key, Kind: kind, Namespace: ns, Name: name, Title: kind + " · " + ns, Label: name + " (not found)", State: stateUnknown}).ID
}

// buildGraph draws the flow of objs: sources to consumers, dependsOn, image policies to
// automations to Git, and what each Kustomization and HelmRelease applied (Plumb objects as
// nodes of their own, other objects counted per namespace and kind). released returns the
// objects of a HelmRelease's current Helm release.
func buildGraph(objs []*unstructured.Unstructured, released func(*unstructured.Unstructured) []ops.Ref) *graph {
	g := newGraph()
	byKey := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		if inGraph(u.GetKind()) {
			byKey[keyOf(u)] = u
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		u := byKey[key]
		id := g.add(objectNode(u)).ID
		switch u.GetKind() {
		case "ImageUpdateAutomation":
			kind, _, _ := unstructured.NestedString(u.Object, "spec", "sourceRef", "kind")
			name, _, _ := unstructured.NestedString(u.Object, "spec", "sourceRef", "name")
			ns, _, _ := unstructured.NestedString(u.Object, "spec", "sourceRef", "namespace")
			if kind == "" {
				kind = "GitRepository"
			}
			if ns == "" {
				ns = u.GetNamespace()
			}
			if name != "" {
				g.edge(id, g.refNode(byKey, kind, ns, name), relPushes)
			}
			for _, p := range selectedPolicies(u, objs) {
				g.edge(g.add(objectNode(p)).ID, id, relImage)
			}
			continue
		case "ImagePolicy":
			name, _, _ := unstructured.NestedString(u.Object, "spec", "imageRepositoryRef", "name")
			ns, _, _ := unstructured.NestedString(u.Object, "spec", "imageRepositoryRef", "namespace")
			if ns == "" {
				ns = u.GetNamespace()
			}
			if name != "" {
				g.edge(g.refNode(byKey, "ImageRepository", ns, name), id, relImage)
			}
			continue
		}
		if kind, ns, name, ok := kinds.SourceOf(u); ok {
			if from := g.refNode(byKey, kind, ns, name); from != "" {
				g.edge(from, id, relSource)
			}
		}
		for _, d := range kinds.DependsOn(u) {
			if from := g.refNode(byKey, d.Kind, d.Namespace, d.Name); from != "" {
				g.edge(from, id, relDependsOn)
			}
		}
		var applied []ops.Ref
		switch u.GetKind() {
		case "Kustomization":
			for _, e := range ops.Inventory(u) {
				if r, ok := ops.ParseID(e.ID, e.Version); ok {
					applied = append(applied, r)
				}
			}
		case "HelmRelease":
			if released != nil {
				applied = released(u)
			}
		}
		g.applied(byKey, id, applied)
	}
	return g
}

// applied adds what an object applied: Plumb objects as themselves, others as one box per
// namespace and kind.
func (g *graph) applied(objs map[string]*unstructured.Unstructured, from string, refs []ops.Ref) {
	type group struct{ ns, kind string }
	counts := map[group]int{}
	for _, r := range refs {
		if k, ok := kinds.ByKind(r.Kind); ok && k.GVK.Group == r.Group && inGraph(r.Kind) {
			g.edge(from, g.refNode(objs, r.Kind, r.Namespace, r.Name), relApplies)
			continue
		}
		counts[group{r.Namespace, r.Kind}]++
	}
	groups := make([]group, 0, len(counts))
	for gr := range counts {
		groups = append(groups, gr)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].ns != groups[j].ns {
			return groups[i].ns < groups[j].ns
		}
		return groups[i].kind < groups[j].kind
	})
	for _, gr := range groups {
		where := gr.ns
		if where == "" {
			where = "cluster"
		}
		n := g.add(&gnode{ID: "applied|" + from + "|" + gr.ns + "|" + gr.kind, Kind: "applied", Namespace: gr.ns,
			Title: "applied · " + where, Label: fmt.Sprintf("%s ×%d", gr.kind, counts[gr]), Href: hrefOf(from) + "#inventory", Count: counts[gr]})
		g.edge(from, n.ID, relApplies)
	}
}

// selectedPolicies are the ImagePolicies of an automation's namespace that its
// spec.policySelector selects (all without one).
func selectedPolicies(iua *unstructured.Unstructured, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	sel := labels.Everything()
	if raw, ok, _ := unstructured.NestedMap(iua.Object, "spec", "policySelector"); ok {
		ls := &metav1.LabelSelector{}
		if m, ok := raw["matchLabels"].(map[string]any); ok {
			ls.MatchLabels = map[string]string{}
			for k, v := range m {
				ls.MatchLabels[k], _ = v.(string)
			}
		}
		s, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			return nil
		}
		sel = s
	}
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == "ImagePolicy" && u.GetNamespace() == iua.GetNamespace() && sel.Matches(labels.Set(u.GetLabels())) {
			out = append(out, u)
		}
	}
	return out
}

// redPath marks everything downstream of a failing object, and the edges that lead there. An
// automation's commits are not its Git repository's input in this sense: a failing
// automation blocks no Kustomization.
func (g *graph) redPath() {
	out := map[string][]*gedge{}
	for _, e := range g.Edges {
		if e.Rel != relPushes {
			out[e.From] = append(out[e.From], e)
		}
	}
	for _, root := range g.Nodes {
		if !root.Failing {
			continue
		}
		queue := []string{root.ID}
		visited := map[string]bool{root.ID: true}
		for len(queue) > 0 {
			id := queue[0]
			queue = queue[1:]
			for _, e := range out[id] {
				e.Red = true
				if visited[e.To] {
					continue
				}
				visited[e.To] = true
				n := g.byID[e.To]
				if !n.Blocked {
					n.Blocked = true
					n.BlockedBy = root.Kind + " " + root.Namespace + "/" + root.Name
				}
				queue = append(queue, e.To)
			}
		}
	}
}

// blockage is one failing object and what it blocks, for the text beside the graph.
type blockage struct {
	Node    *gnode
	Blocked []*gnode
}

func (g *graph) blockages() []blockage {
	var out []blockage
	for _, n := range g.Nodes {
		if !n.Failing {
			continue
		}
		b := blockage{Node: n}
		by := n.Kind + " " + n.Namespace + "/" + n.Name
		for _, m := range g.Nodes {
			if m.Blocked && m.BlockedBy == by && m.Kind != "applied" {
				b.Blocked = append(b.Blocked, m)
			}
		}
		out = append(out, b)
	}
	return out
}

// focus keeps the nodes of namespace ns and their direct neighbours, and the edges among them.
func (g *graph) focus(ns string) *graph {
	keep := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Namespace == ns && !strings.HasPrefix(n.ID, "applied|") || strings.HasPrefix(n.ID, "applied|") && g.byID[strings.Split(n.ID, "|")[1]].Namespace == ns {
			keep[n.ID] = true
		}
	}
	for _, e := range g.Edges {
		if keep[e.From] || keep[e.To] {
			keep[e.From], keep[e.To] = true, true
		}
	}
	out := newGraph()
	for _, n := range g.Nodes {
		if keep[n.ID] {
			out.add(n)
		}
	}
	for _, e := range g.Edges {
		if keep[e.From] && keep[e.To] {
			out.Edges = append(out.Edges, e)
		}
	}
	return out
}

// collapse draws one box per namespace: how many objects, how many fail, and which namespaces
// feed which.
func (g *graph) collapse() *graph {
	type agg struct{ total, failing, blocked, notReady int }
	per := map[string]*agg{}
	for _, n := range g.Nodes {
		if n.Kind == "applied" {
			continue
		}
		a := per[n.Namespace]
		if a == nil {
			a = &agg{}
			per[n.Namespace] = a
		}
		a.total++
		switch {
		case n.Failing:
			a.failing++
		case n.Blocked:
			a.blocked++
		case n.State != stateReady:
			a.notReady++
		}
	}
	out := newGraph()
	names := make([]string, 0, len(per))
	for ns := range per {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		a := per[ns]
		st := stateReady
		switch {
		case a.failing > 0:
			st = stateFailed
		case a.notReady > 0:
			st = stateReconciling
		}
		label := fmt.Sprintf("%d objects", a.total)
		if a.failing > 0 {
			label += fmt.Sprintf(", %d failing", a.failing)
		}
		out.add(&gnode{ID: "ns|" + ns, Kind: "Namespace", Namespace: ns, Name: ns, Title: "namespace " + ns, Label: label,
			State: st, Failing: a.failing > 0, Blocked: a.blocked > 0 && a.failing == 0, BlockedBy: "another namespace",
			Href: "/graph?ns=" + ns})
	}
	for _, e := range g.Edges {
		a, b := g.byID[e.From], g.byID[e.To]
		if a.Kind == "applied" || b.Kind == "applied" || a.Namespace == b.Namespace {
			continue
		}
		out.edge("ns|"+a.Namespace, "ns|"+b.Namespace, relNamespace)
		if e.Red {
			for _, oe := range out.Edges {
				if oe.From == "ns|"+a.Namespace && oe.To == "ns|"+b.Namespace {
					oe.Red = true
				}
			}
		}
	}
	return out
}

// condense draws a big graph smaller: the objects that appliers applied are counted per
// namespace and kind across appliers, and Kustomizations and HelmReleases that only take a
// source and apply objects (no dependsOn, no Plumb objects applied) are one box per source,
// kind and state, linking to the overview of them. Failing objects keep their own box when
// alone in their group.
func (g *graph) condense() *graph {
	in, out := map[string][]*gedge{}, map[string][]*gedge{}
	for _, e := range g.Edges {
		in[e.To] = append(in[e.To], e)
		out[e.From] = append(out[e.From], e)
	}
	groupOf := map[string]string{}
	members := map[string]int{}
	for _, n := range g.Nodes {
		gid := ""
		switch n.Kind {
		case "applied":
			parts := strings.Split(n.ID, "|")
			gid = "applied|*|" + parts[2] + "|" + parts[3]
		case "Kustomization", "HelmRelease":
			simple := true
			var sources []string
			for _, e := range in[n.ID] {
				simple = simple && e.Rel == relSource
				sources = append(sources, e.From)
			}
			for _, e := range out[n.ID] {
				simple = simple && g.byID[e.To].Kind == "applied"
			}
			if simple {
				sort.Strings(sources)
				gid = fmt.Sprintf("group|%s|%s|%s|%s|%t", n.Kind, n.Namespace, strings.Join(sources, ","), n.State, n.Blocked)
			}
		}
		if gid != "" {
			groupOf[n.ID] = gid
			members[gid]++
		}
	}
	c := newGraph()
	for _, n := range g.Nodes {
		gid, grouped := groupOf[n.ID]
		if !grouped || members[gid] == 1 && n.Kind != "applied" {
			delete(groupOf, n.ID)
			c.add(n)
			continue
		}
		box, ok := c.byID[gid]
		if !ok {
			box = c.add(&gnode{ID: gid, Kind: n.Kind, Namespace: n.Namespace, State: n.State, Failing: n.Failing,
				Blocked: n.Blocked, BlockedBy: n.BlockedBy})
		}
		if n.Kind == "applied" {
			box.Count += n.Count
			parts := strings.Split(gid, "|")
			where := parts[2]
			if where == "" {
				where = "cluster"
			}
			box.Title, box.Label = "applied · "+where, fmt.Sprintf("%s ×%d", parts[3], box.Count)
			continue
		}
		box.Count++
		box.Title = n.Kind + " · " + n.Namespace
		box.Label = fmt.Sprintf("%d %ss", box.Count, n.Kind)
		v := url.Values{"ns": {n.Namespace}, "kind": {n.Kind}, "state": {string(n.State)}}
		box.Href = "/?" + v.Encode()
	}
	edges := map[string]*gedge{}
	for _, e := range g.Edges {
		from, to := e.From, e.To
		if gid, ok := groupOf[from]; ok {
			from = gid
		}
		if gid, ok := groupOf[to]; ok {
			to = gid
		}
		id := from + "→" + to
		if ce, ok := edges[id]; ok {
			ce.Red = ce.Red || e.Red
			continue
		}
		ce := &gedge{From: from, To: to, Rel: e.Rel, Red: e.Red}
		edges[id] = ce
		c.Edges = append(c.Edges, ce)
	}
	return c
}
