package dashboard

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// pageSize is how many objects the overview lists per page: the page stays quick with 5,000
// objects in the cluster.
const pageSize = 100

// maxSummary is how many namespaces the summary lists; the filter reaches the others.
const maxSummary = 50

// filter is the overview's query: every field optional.
type filter struct {
	Q, Namespace, Kind, State string
	Page                      int
}

func filterOf(r *http.Request) filter {
	q := r.URL.Query()
	f := filter{Q: strings.TrimSpace(q.Get("q")), Namespace: q.Get("ns"), Kind: q.Get("kind"), State: q.Get("state")}
	f.Page, _ = strconv.Atoi(q.Get("page"))
	if f.Page < 1 {
		f.Page = 1
	}
	return f
}

func (f filter) values(page int) url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"q": f.Q, "ns": f.Namespace, "kind": f.Kind, "state": f.State} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return v
}

// matches applies the filter but the namespace (the summary counts every namespace).
func (f filter) matches(r *row) bool {
	if f.Kind != "" && r.Kind != f.Kind {
		return false
	}
	switch f.State {
	case "":
	case "failing":
		if !r.State.Failing() {
			return false
		}
	case "notready":
		if r.State == stateReady {
			return false
		}
	default:
		if string(r.State) != f.State {
			return false
		}
	}
	if f.Q != "" {
		hay := strings.ToLower(r.Kind + "/" + r.Namespace + "/" + r.Name + " " + r.Reason + " " + r.Message + " " + r.Revision)
		for _, word := range strings.Fields(strings.ToLower(f.Q)) {
			if !strings.Contains(hay, word) {
				return false
			}
		}
	}
	return true
}

type count struct {
	State state
	N     int
	URL   url.Values
}

type nsSummary struct {
	Namespace string
	Counts    []int // in the order of states
	Total     int
	Failing   int
	URL       url.Values
}

type nsGroup struct {
	Namespace string
	Rows      []row
}

type overviewPage struct {
	base
	Filter      filter
	States      []state
	Kinds       []string
	Namespaces  []string
	Totals      []count
	Summary     []nsSummary
	SummaryMore int
	Groups      []nsGroup
	Matched     int
	First, Last int
	Page, Pages int
	Prev, Next  url.Values
	Notes       []string
}

func (s *Server) serveOverview(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "overview", s.overview(filterOf(r)))
}

// overview computes the overview page from the store.
func (s *Server) overview(f filter) overviewPage {
	p := overviewPage{base: s.base("Overview", "overview"), Filter: f, States: states}
	for _, k := range s.store.Installed {
		p.Kinds = append(p.Kinds, k.GVK.Kind)
	}
	p.Notes = s.storeNotes()
	byNS := map[string]*nsSummary{}
	totals := make([]int, len(states))
	var matched []row
	for _, rw := range s.store.Rows() {
		if !f.matches(&rw) {
			continue
		}
		sum := byNS[rw.Namespace]
		if sum == nil {
			sum = &nsSummary{Namespace: rw.Namespace, Counts: make([]int, len(states))}
			byNS[rw.Namespace] = sum
		}
		i := stateIndex(rw.State)
		sum.Counts[i]++
		sum.Total++
		if rw.State.Failing() {
			sum.Failing++
		}
		if f.Namespace != "" && rw.Namespace != f.Namespace {
			continue
		}
		totals[i]++
		matched = append(matched, rw)
	}
	for i, st := range states {
		v := f.values(1)
		v.Set("state", string(st))
		p.Totals = append(p.Totals, count{State: st, N: totals[i], URL: v})
	}
	for ns, sum := range byNS {
		p.Namespaces = append(p.Namespaces, ns)
		v := f.values(1)
		v.Set("ns", ns)
		sum.URL = v
		p.Summary = append(p.Summary, *sum)
	}
	sort.Strings(p.Namespaces)
	// The namespaces that need attention first.
	sort.Slice(p.Summary, func(i, j int) bool {
		a, b := p.Summary[i], p.Summary[j]
		if a.Failing != b.Failing {
			return a.Failing > b.Failing
		}
		return a.Namespace < b.Namespace
	})
	if len(p.Summary) > maxSummary {
		p.SummaryMore = len(p.Summary) - maxSummary
		p.Summary = p.Summary[:maxSummary]
	}

	sort.Slice(matched, func(i, j int) bool {
		a, b := &matched[i], &matched[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if ka, kb := kindOrder(a.Kind), kindOrder(b.Kind); ka != kb {
			return ka < kb
		}
		return a.Name < b.Name
	})
	p.Matched = len(matched)
	p.Pages = max(1, (len(matched)+pageSize-1)/pageSize)
	p.Page = min(f.Page, p.Pages)
	from, to := (p.Page-1)*pageSize, min(p.Page*pageSize, len(matched))
	p.First, p.Last = from+1, to
	for _, rw := range matched[from:to] {
		if n := len(p.Groups); n == 0 || p.Groups[n-1].Namespace != rw.Namespace {
			p.Groups = append(p.Groups, nsGroup{Namespace: rw.Namespace})
		}
		g := &p.Groups[len(p.Groups)-1]
		g.Rows = append(g.Rows, rw)
	}
	if p.Page > 1 {
		p.Prev = f.values(p.Page - 1)
	}
	if p.Page < p.Pages {
		p.Next = f.values(p.Page + 1)
	}
	return p
}

func stateIndex(st state) int {
	for i, s := range states {
		if s == st {
			return i
		}
	}
	return len(states) - 1
}

// storeNotes say what the dashboard cannot show, and why.
func (s *Server) storeNotes() []string {
	var notes []string
	if len(s.store.Missing) > 0 {
		var names []string
		for _, k := range s.store.Missing {
			names = append(names, k.GVK.Kind)
		}
		notes = append(notes, "Not installed in this cluster: "+strings.Join(names, ", ")+".")
	}
	if len(s.store.Unreadable) > 0 {
		var names []string
		for _, k := range s.store.Unreadable {
			names = append(names, k.GVK.Kind)
		}
		notes = append(notes, "You may not list: "+strings.Join(names, ", ")+".")
	}
	var scoped []string
	for _, k := range s.store.Installed {
		if ns := s.store.Scope[k.GVK.Kind]; ns != "" {
			scoped = append(scoped, k.GVK.Kind)
		}
	}
	if len(scoped) > 0 {
		notes = append(notes, "Shown only in namespace "+s.cfg.Namespace+" (you may not list them in every namespace): "+strings.Join(scoped, ", ")+".")
	}
	return notes
}
