// Package dashboard serves `plumb dashboard`: a web UI of every Plumb object a person may see,
// live. Pages are rendered on the server with html/template from an in-memory store that watches
// fed (one watch per installed kind, one filtered Event watch per kind); a little plain
// JavaScript listens to server-sent events and swaps in fresh fragments, so everything works,
// slower, without it. Every asset is embedded: no CDN, no build chain, works offline. Actions
// (reconcile, suspend, resume) are offered only where the API server says the person may patch
// the object, and are carried out with their identity.
package dashboard

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// DefaultAddr is where the dashboard listens unless told otherwise: loopback only.
const DefaultAddr = "127.0.0.1:9999"

// Config configures a dashboard.
type Config struct {
	// REST is the identity the dashboard watches and reads with: the person's kubeconfig, or in
	// a cluster the dashboard's ServiceAccount.
	REST *rest.Config
	// Client reads with REST (inventories, Helm storage, diffs).
	Client client.Client
	// Namespace is where kinds are watched that the identity may not list in every namespace.
	Namespace string
	// InCluster: the dashboard runs as a Deployment behind an authenticating proxy. It shows what
	// its ServiceAccount may read; actions (with AllowActions) and diffs are done as the person
	// the proxy names in UserHeader and GroupHeader, through impersonation.
	InCluster bool
	// AllowActions enables actions in a cluster; locally they follow the person's RBAC.
	AllowActions bool
	// UserHeader and GroupHeader name the proxy's identity headers (GroupHeader may repeat or
	// hold a comma-separated list).
	UserHeader, GroupHeader string
	// Timeout bounds the API requests of a page and the wait of a reconcile with its source.
	Timeout time.Duration
	// Log receives one line per failed request of the dashboard's own (nil: discarded).
	Log io.Writer
}

// Server is a running dashboard: its store of objects, templates and handlers.
type Server struct {
	cfg      Config
	store    *store
	hub      *hub
	pages    map[string]*template.Template
	csrf     string
	mux      *http.ServeMux
	users    *userClients
	releases *releaseCache
	// ctx ends the watches, the event streams and the waits that actions leave running.
	ctx context.Context
}

// New starts the watches and returns the dashboard once it has every object in memory. The
// watches end with ctx.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.UserHeader == "" {
		cfg.UserHeader = "X-Forwarded-User"
	}
	if cfg.GroupHeader == "" {
		cfg.GroupHeader = "X-Forwarded-Groups"
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	h := newHub()
	st, err := startStore(ctx, cfg.REST, cfg.Namespace, h)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: st, hub: h, pages: pages, csrf: hex.EncodeToString(token), ctx: ctx,
		users: newUserClients(cfg.REST, cfg.Client), releases: newReleaseCache()}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
	m.HandleFunc("GET /{$}", s.serveOverview)
	m.HandleFunc("GET /graph", s.serveGraph)
	m.HandleFunc("GET /o/{group}/{kind}/{ns}/{name}", s.serveObject)
	m.HandleFunc("GET /o/{group}/{kind}/{ns}/{name}/diff", s.serveDiff)
	m.HandleFunc("POST /o/{group}/{kind}/{ns}/{name}/{action}", s.serveAction)
	m.HandleFunc("GET /events", s.serveEvents)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	s.mux = m
}

// ServeHTTP serves the dashboard with the headers every answer carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Only our own scripts, styles and images; no frames, no inline scripts.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if !s.cfg.InCluster && !loopbackHost(r.Host) {
		// A web page whose name an attacker points at 127.0.0.1 (DNS rebinding) would otherwise
		// be same-origin with the dashboard, and act with the person's credentials.
		http.Error(w, "the dashboard answers only to loopback names (127.0.0.1, [::1], localhost)", http.StatusMisdirectedRequest)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// loopbackHost says whether a Host header names this machine: localhost or a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

// CheckAddr refuses to listen beyond loopback unless inCluster: locally the dashboard acts
// with the person's credentials, and anyone who could reach it would too.
func CheckAddr(addr string, inCluster bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if inCluster {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q is not a loopback address: the dashboard acts with your credentials, so it listens only on this machine (127.0.0.1 or ::1); in a cluster use --in-cluster behind an authenticating proxy", addr)
	}
	return nil
}

// Serve answers on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// logf notes a failure of the dashboard's own on its log, never a secret.
func (s *Server) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, "%s dashboard: %s\n", time.Now().Format("15:04:05"), strings.TrimSpace(fmt.Sprintf(format, args...)))
}
