package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// pageNames are the templates of templates/, each rendered inside layout.html.
var pageNames = []string{"overview", "graph", "object", "diff", "error"}

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return duration.HumanDuration(time.Since(t)) + " ago"
	},
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"query": func(v url.Values) template.URL { return template.URL("?" + v.Encode()) },
	"add":   func(a, b int) int { return a + b },
	"short": short,
}

func parseTemplates() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// base is what every page's layout needs.
type base struct {
	Title string
	// Nav is the current section: overview or graph.
	Nav  string
	CSRF string
	// Mode says where the dashboard runs and what it may do, for the footer.
	Mode string
}

func (s *Server) base(title, nav string) base {
	mode := "local: your kubeconfig's identity and RBAC"
	if s.cfg.InCluster {
		mode = "in-cluster: read-only"
		if s.cfg.AllowActions {
			mode = "in-cluster: actions as the signed-in user"
		}
	}
	return base{Title: title, Nav: nav, CSRF: s.csrf, Mode: mode}
}

// render writes a page, or only one of its fragments when the request asks for
// ?fragment=<name> (the live updates do).
func (s *Server) render(w http.ResponseWriter, r *http.Request, page string, data any) {
	s.renderStatus(w, r, page, http.StatusOK, data)
}

func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, page string, status int, data any) {
	t := s.pages[page]
	name := "layout"
	if f := r.URL.Query().Get("fragment"); f != "" {
		if t.Lookup("fragment-"+f) == nil {
			http.Error(w, "no such fragment", http.StatusNotFound)
			return
		}
		name = "fragment-" + f
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		s.logf("render %s: %v", page, err)
		http.Error(w, "the page could not be rendered; see the dashboard's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage answers with a status and a message a person can act on.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, message string) {
	s.renderStatus(w, r, "error", status, struct {
		base
		Status  int
		Message string
	}{s.base(http.StatusText(status), ""), status, message})
}
