package dashboard

import (
	"fmt"
	"sort"
	"strings"
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
	for _, e := range g.Edges {
		in[e.To] = append(in[e.To], e)
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
	// An edge that spans columns passes through a placeholder in each column between, so that
	// it takes a slot of its own there instead of running behind the boxes.
	pred, succ := map[*gnode][]*gnode{}, map[*gnode][]*gnode{}
	via := map[*gedge][]*gnode{}
	for i, e := range g.Edges {
		a, b := g.byID[e.From], g.byID[e.To]
		prev := a
		for c := col[a.Layer] + 1; c < col[b.Layer]; c++ {
			d := &gnode{ID: fmt.Sprintf("via|%d|%d", i, c), Kind: "via", Namespace: a.Namespace, Label: a.Label}
			cols[c] = append(cols[c], d)
			via[e] = append(via[e], d)
			succ[prev], pred[d] = append(succ[prev], d), append(pred[d], prev)
			prev = d
		}
		succ[prev], pred[b] = append(succ[prev], b), append(pred[b], prev)
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
			reorder(cols[i], func(n *gnode) []*gnode { return pred[n] })
		}
		for i := len(cols) - 2; i >= 0; i-- {
			reorder(cols[i], func(n *gnode) []*gnode { return succ[n] })
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
		x, y := a.X+nodeW, a.Y+nodeH/2
		var path strings.Builder
		fmt.Fprintf(&path, "M%d,%d", x, y)
		for _, d := range via[e] {
			dy := d.Y + nodeH/2
			fmt.Fprintf(&path, " C%d,%d %d,%d %d,%d L%d,%d", x+gapX/2, y, d.X-gapX/2, dy, d.X, dy, d.X+nodeW, dy)
			x, y = d.X+nodeW, dy
		}
		x2, y2 := b.X, b.Y+nodeH/2
		fmt.Fprintf(&path, " C%d,%d %d,%d %d,%d", x+gapX, y, x2-gapX, y2, x2-6, y2)
		e.Path = path.String()
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

// short cuts a label to what fits in a box.
func short(s string) string {
	if r := []rune(s); len(r) > labelChars {
		return string(r[:labelChars-1]) + "…"
	}
	return s
}
