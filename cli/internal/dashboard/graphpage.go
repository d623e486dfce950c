package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/ops"
)

// maxGraphNodes is the largest graph drawn in full; above it the graph collapses to one box per
// namespace, each linking to its namespace's graph.
const maxGraphNodes = 250

type graphPage struct {
	base
	Namespace     string
	Namespaces    []string
	Collapsed     bool
	Condensed     bool
	Width, Height int
	NodeW, NodeH  int
	Nodes         []*gnode
	Edges         []*gedge
	Blockages     []blockage
}

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	s.render(w, r, "graph", s.graphPage(ctx, r.URL.Query().Get("ns")))
}

func (s *Server) graphPage(ctx context.Context, ns string) graphPage {
	p := graphPage{base: s.base("Flow graph", "graph"), Namespace: ns, NodeW: nodeW, NodeH: nodeH}
	objs := s.store.All()
	seen := map[string]bool{}
	for _, u := range objs {
		if !seen[u.GetNamespace()] {
			seen[u.GetNamespace()] = true
			p.Namespaces = append(p.Namespaces, u.GetNamespace())
		}
	}
	sort.Strings(p.Namespaces)
	g := buildGraph(objs, func(hr *unstructured.Unstructured) []ops.Ref {
		if ns != "" && hr.GetNamespace() != ns {
			return nil
		}
		return s.releases.get(ctx, s.cfg.Client, hr)
	})
	g.redPath()
	p.Blockages = g.blockages()
	switch {
	case ns != "":
		p.Title = "Flow graph of " + ns
		if g = g.focus(ns); len(g.Nodes) > maxGraphNodes {
			g = g.condense()
			p.Condensed = true
		}
	case len(g.Nodes) > maxGraphNodes:
		if small := g.condense(); len(small.Nodes) <= maxGraphNodes {
			g, p.Condensed = small, true
		} else {
			g, p.Collapsed = g.collapse(), true
		}
	}
	p.Width, p.Height = g.layout()
	p.Nodes, p.Edges = g.Nodes, g.Edges
	if ns != "" {
		var mine []blockage
		for _, b := range p.Blockages {
			if b.Node.Namespace == ns {
				mine = append(mine, b)
			}
		}
		p.Blockages = mine
	}
	return p
}

// releaseCache keeps the objects of each HelmRelease's current release: the Helm storage
// Secret of a release version never changes, so it is read once.
type releaseCache struct {
	mu sync.Mutex
	m  map[string][]ops.Ref
}

func newReleaseCache() *releaseCache { return &releaseCache{m: map[string][]ops.Ref{}} }

// get returns the objects of hr's current release; nothing when unreadable (no access to the
// storage Secret, no release yet).
func (c *releaseCache) get(ctx context.Context, reader client.Reader, hr *unstructured.Unstructured) []ops.Ref {
	history, _, _ := unstructured.NestedSlice(hr.Object, "status", "history")
	if len(history) == 0 {
		return nil
	}
	latest, _ := history[0].(map[string]any)
	key := fmt.Sprintf("%s|%v|%v|%v", keyOf(hr), latest["namespace"], latest["name"], latest["version"])
	c.mu.Lock()
	refs, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return refs
	}
	refs, err := ops.ReleaseObjects(ctx, reader, hr)
	if err != nil {
		return nil // the object page says why
	}
	c.mu.Lock()
	if len(c.m) > 4096 {
		clear(c.m)
	}
	c.m[key] = refs
	c.mu.Unlock()
	return refs
}
