package dashboard

import (
	"fmt"
	"sort"
)

// The flow graph is laid out in layers, left to right, as a simple Sugiyama-style layout:
// each node's layer is the longest path to it (with a floor per kind, so that image scans,
// sources and charts keep their columns), applied objects take the last column, and the order
// within a column follows the average position of a node's neighbours, a few sweeps each way,
// to uncross edges. No Go layout library was worth a dependency: gonum only has force-directed
// layouts, and the one layered layout on GitHub is unmaintained.

// Sizes of the drawing, in pixels.
const (
	nodeW, nodeH = 224, 58
	gapX, gapY   = 72, 14
	margin       = 8
	labelChars   = 28
)

// floor is the leftmost layer of a kind.
func floor(kind string) int {
	switch kind {
	case "ImageRepository":
		return 0
	case "ImagePolicy":
		return 1
	case "ImageUpdateAutomation":
		return 2
	case "GitRepository", "OCIRepository", "HelmRepository", "Bucket":
		return 3
	case "HelmChart":
		return 4
	case "Kustomization", "HelmRelease":
		return 5
	}
	return 0
}

// layout places every node and draws every edge; it returns the drawing's size.
func (g *graph) layout() (width, height int) {
	if len(g.Nodes) == 0 {
		return 0, 0
	}
	in := map[string][]*gedge{}
	out := map[string][]*gedge{}
	for _, e := range g.Edges {
		in[e.To] = append(in[e.To], e)
		out[e.From] = append(out[e.From], e)
	}
	// Longest path, depth first; an edge that closes a cycle is not followed.
	const (
		unvisited = iota
		visiting
		done
	)
	mark := map[string]int{}
	var visit func(n *gnode)
	visit = func(n *gnode) {
		mark[n.ID] = visiting
		layer := floor(n.Kind)
		for _, e := range in[n.ID] {
			p := g.byID[e.From]
			switch mark[p.ID] {
			case visiting:
				continue
			case unvisited:
				visit(p)
			}
			layer = max(layer, p.Layer+1)
		}
		n.Layer = layer
		mark[n.ID] = done
	}
	last := 0
	for _, n := range g.Nodes {
		if mark[n.ID] == unvisited {
			visit(n)
		}
		if n.Kind != "applied" {
			last = max(last, n.Layer)
		}
	}
	for _, n := range g.Nodes {
		if n.Kind == "applied" {
			n.Layer = last + 1
		}
	}
	// Columns: the layers in use, in order.
	used := map[int]bool{}
	for _, n := range g.Nodes {
		used[n.Layer] = true
	}
	layers := make([]int, 0, len(used))
	for l := range used {
		layers = append(layers, l)
	}
	sort.Ints(layers)
	col := map[int]int{}
	for i, l := range layers {
		col[l] = i
	}
	cols := make([][]*gnode, len(layers))
	for _, n := range g.Nodes {
		c := col[n.Layer]
		cols[c] = append(cols[c], n)
	}
	for _, c := range cols {
		sort.SliceStable(c, func(i, j int) bool {
			a, b := c[i], c[j]
			if a.Namespace != b.Namespace {
				return a.Namespace < b.Namespace
			}
			if ka, kb := kindOrder(a.Kind), kindOrder(b.Kind); ka != kb {
				return ka < kb
			}
			return a.Label < b.Label
		})
		number(c)
	}
	// Barycentre sweeps: down the columns by predecessors, back up by successors.
	for range 4 {
		for i := 1; i < len(cols); i++ {
			reorder(cols[i], func(n *gnode) []*gnode { return ends(in[n.ID], g, true) })
		}
		for i := len(cols) - 2; i >= 0; i-- {
			reorder(cols[i], func(n *gnode) []*gnode { return ends(out[n.ID], g, false) })
		}
	}
	rows := 0
	for i, c := range cols {
		for j, n := range c {
			n.X = margin + i*(nodeW+gapX)
			n.Y = margin + j*(nodeH+gapY)
		}
		rows = max(rows, len(c))
	}
	for _, e := range g.Edges {
		a, b := g.byID[e.From], g.byID[e.To]
		x1, y1 := a.X+nodeW, a.Y+nodeH/2
		x2, y2 := b.X, b.Y+nodeH/2
		bend := gapX
		e.Path = fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", x1, y1, x1+bend, y1, x2-bend, y2, x2-6, y2)
	}
	return 2*margin + len(cols)*(nodeW+gapX) - gapX, 2*margin + rows*(nodeH+gapY) - gapY
}

// number records each node's position in its column.
func number(c []*gnode) {
	for i, n := range c {
		n.order = float64(i)
	}
}

// reorder sorts a column by the mean position of each node's neighbours in the columns already
// placed; a node without any keeps its place.
func reorder(c []*gnode, neighbours func(*gnode) []*gnode) {
	key := make(map[*gnode]float64, len(c))
	for _, n := range c {
		ns := neighbours(n)
		if len(ns) == 0 {
			key[n] = n.order
			continue
		}
		sum := 0.0
		for _, m := range ns {
			sum += m.order
		}
		key[n] = sum / float64(len(ns))
	}
	sort.SliceStable(c, func(i, j int) bool { return key[c[i]] < key[c[j]] })
	number(c)
}

// ends returns the nodes at the other end of edges: their sources when from is true.
func ends(es []*gedge, g *graph, from bool) []*gnode {
	out := make([]*gnode, 0, len(es))
	for _, e := range es {
		if from {
			out = append(out, g.byID[e.From])
		} else {
			out = append(out, g.byID[e.To])
		}
	}
	return out
}

// short cuts a label to what fits in a box.
func short(s string) string {
	if r := []rune(s); len(r) > labelChars {
		return string(r[:labelChars-1]) + "…"
	}
	return s
}
