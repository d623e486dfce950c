package dashboard

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/ops"
)

// identity is whom an action is done as: the dashboard's own credentials (locally: the
// person's kubeconfig) when User is empty, else a person the authenticating proxy named,
// impersonated.
type identity struct {
	User   string
	Groups []string
}

func (id identity) key() string { return id.User + "\x00" + strings.Join(id.Groups, "\x00") }

// identity returns whom a request acts as, or why it may not act at all.
func (s *Server) identity(r *http.Request) (identity, string) {
	if !s.cfg.InCluster {
		return identity{}, ""
	}
	if !s.cfg.AllowActions {
		return identity{}, "Read-only: this dashboard runs in the cluster without --allow-actions."
	}
	user := strings.TrimSpace(r.Header.Get(s.cfg.UserHeader))
	if user == "" {
		return identity{}, fmt.Sprintf("No signed-in user: the authenticating proxy sent no %s header.", s.cfg.UserHeader)
	}
	var groups []string
	for _, v := range r.Header.Values(s.cfg.GroupHeader) {
		for _, g := range strings.Split(v, ",") {
			if g = strings.TrimSpace(g); g != "" {
				groups = append(groups, g)
			}
		}
	}
	sort.Strings(groups)
	return identity{User: user, Groups: groups}, ""
}

// userClient acts as one identity.
type userClient struct {
	cfg *rest.Config
	c   client.Client
}

// userClients keeps a client per identity (impersonating clients share the REST mapper), and
// the answers of recent access reviews.
type userClients struct {
	base  *rest.Config
	own   client.Client
	mu    sync.Mutex
	users map[string]*userClient
	// allowed caches access reviews for a short while: a page asks several.
	allowed map[string]verdict
}

type verdict struct {
	ok      bool
	expires time.Time
}

// reviewTTL is how long an access review's answer is reused.
const reviewTTL = 20 * time.Second

func newUserClients(cfg *rest.Config, own client.Client) *userClients {
	return &userClients{base: cfg, own: own, users: map[string]*userClient{}, allowed: map[string]verdict{}}
}

func (u *userClients) get(id identity) (*userClient, error) {
	if id.User == "" {
		return &userClient{cfg: u.base, c: u.own}, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if c, ok := u.users[id.key()]; ok {
		return c, nil
	}
	cfg := rest.CopyConfig(u.base)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: id.User, Groups: id.Groups}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: u.own.Scheme(), Mapper: u.own.RESTMapper(), HTTPClient: httpClient})
	if err != nil {
		return nil, err
	}
	if len(u.users) >= 256 {
		clear(u.users)
	}
	uc := &userClient{cfg: cfg, c: c}
	u.users[id.key()] = uc
	return uc, nil
}

// may asks the API server whether id may patch an object of kind k.
func (u *userClients) may(ctx context.Context, id identity, k kinds.Kind, ns, name string) (bool, error) {
	key := id.key() + "\x00" + k.GVK.Kind + "\x00" + ns + "\x00" + name
	u.mu.Lock()
	v, ok := u.allowed[key]
	u.mu.Unlock()
	if ok && time.Now().Before(v.expires) {
		return v.ok, nil
	}
	uc, err := u.get(id)
	if err != nil {
		return false, err
	}
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "patch", Group: k.GVK.Group, Resource: k.Names[0], Namespace: ns, Name: name},
	}}
	if err := uc.c.Create(ctx, review); err != nil {
		return false, err
	}
	u.mu.Lock()
	if len(u.allowed) > 10000 {
		clear(u.allowed)
	}
	u.allowed[key] = verdict{ok: review.Status.Allowed, expires: time.Now().Add(reviewTTL)}
	u.mu.Unlock()
	return review.Status.Allowed, nil
}

// actionsFor decides which buttons the object page shows: only what the API server says the
// person may do.
func (s *Server) actionsFor(ctx context.Context, r *http.Request, k kinds.Kind, u, src *unstructured.Unstructured) actions {
	id, why := s.identity(r)
	if why != "" {
		return actions{Why: why}
	}
	ok, err := s.users.may(ctx, id, k, u.GetNamespace(), u.GetName())
	if err != nil {
		s.logf("access review for %s %s/%s: %v", k.GVK.Kind, u.GetNamespace(), u.GetName(), err)
		return actions{Why: "Could not ask the cluster what you may do: " + describeErr(err)}
	}
	if !ok {
		return actions{Why: "None: your RBAC does not allow patching this object."}
	}
	a := actions{Reconcile: !kinds.Suspended(u)}
	if k.Suspendable {
		a.Suspend, a.Resume = !kinds.Suspended(u), kinds.Suspended(u)
	}
	if src != nil && a.Reconcile && !kinds.Suspended(src) {
		sk, _ := kinds.ByKind(src.GetKind())
		a.WithSource, _ = s.users.may(ctx, id, sk, src.GetNamespace(), src.GetName())
	}
	return a
}

// serveAction carries out reconcile, reconcile-with-source, suspend or resume as the person,
// after checking the request came from a page of this dashboard.
func (s *Server) serveAction(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		s.actionError(w, r, http.StatusForbidden, "This request did not come from a page of this dashboard; reload the page and try again.")
		return
	}
	k, u, ok := s.lookup(w, r)
	if !ok {
		return
	}
	id, why := s.identity(r)
	if why != "" {
		s.actionError(w, r, http.StatusForbidden, why)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	if ok, err := s.users.may(ctx, id, k, u.GetNamespace(), u.GetName()); err != nil || !ok {
		s.actionError(w, r, http.StatusForbidden, fmt.Sprintf("You may not patch %s %s/%s.", k.GVK.Kind, u.GetNamespace(), u.GetName()))
		return
	}
	uc, err := s.users.get(id)
	if err != nil {
		s.actionError(w, r, http.StatusInternalServerError, "Could not act as you: "+describeErr(err))
		return
	}
	target := &unstructured.Unstructured{}
	target.SetGroupVersionKind(k.GVK)
	target.SetNamespace(u.GetNamespace())
	target.SetName(u.GetName())
	what := fmt.Sprintf("%s %s/%s", k.GVK.Kind, u.GetNamespace(), u.GetName())
	var done string
	switch action := r.PathValue("action"); action {
	case "reconcile":
		if kinds.Suspended(u) {
			s.actionError(w, r, http.StatusConflict, what+" is suspended; resume it first.")
			return
		}
		if _, err = ops.RequestReconcile(ctx, uc.c, target); err == nil {
			done = "Reconcile of " + what + " requested."
		}
	case "reconcile-with-source":
		done, err = s.reconcileWithSource(ctx, id, uc, k, u, target)
	case "suspend", "resume":
		if !k.Suspendable {
			s.actionError(w, r, http.StatusBadRequest, k.GVK.Kind+" cannot be suspended.")
			return
		}
		if err = ops.SetSuspend(ctx, uc.c, target, action == "suspend"); err == nil {
			done = what + " suspended."
			if action == "resume" {
				if _, err = ops.RequestReconcile(ctx, uc.c, target); err == nil {
					done = what + " resumed; reconcile requested."
				}
			}
		}
	default:
		s.actionError(w, r, http.StatusNotFound, fmt.Sprintf("No action %q: use reconcile, reconcile-with-source, suspend or resume.", action))
		return
	}
	if err != nil {
		s.actionError(w, r, http.StatusBadGateway, "The cluster refused: "+describeErr(err))
		return
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"message": done})
		return
	}
	http.Redirect(w, r, hrefOf(keyOf(u)), http.StatusSeeOther)
}

// reconcileWithSource requests a reconcile of the source, and once its controller has handled
// it, of the object, as `plumb reconcile --with-source` does; the second half runs after the
// answer, bounded by the timeout.
func (s *Server) reconcileWithSource(ctx context.Context, id identity, uc *userClient, k kinds.Kind, u, target *unstructured.Unstructured) (string, error) {
	kind, ns, name, ok := kinds.SourceOf(u)
	sk, known := kinds.ByKind(kind)
	if !ok || !known || s.store.Get(kind, ns, name) == nil {
		return "", fmt.Errorf("%s %s/%s has no source that is here", k.GVK.Kind, u.GetNamespace(), u.GetName())
	}
	if may, err := s.users.may(ctx, id, sk, ns, name); err != nil || !may {
		return "", fmt.Errorf("you may not patch its source %s %s/%s", kind, ns, name)
	}
	src := &unstructured.Unstructured{}
	src.SetGroupVersionKind(sk.GVK)
	src.SetNamespace(ns)
	src.SetName(name)
	value, err := ops.RequestReconcile(ctx, uc.c, src)
	if err != nil {
		return "", err
	}
	go func() {
		wait, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
		defer cancel()
		err := s.store.waitFor(wait, kind, ns, name, func(o *unstructured.Unstructured) bool { return kinds.LastHandled(o) == value })
		if err != nil {
			s.logf("%s %s/%s did not handle the reconcile request in %s; %s %s/%s was not requested", kind, ns, name, s.cfg.Timeout, k.GVK.Kind, u.GetNamespace(), u.GetName())
			return
		}
		if _, err := ops.RequestReconcile(wait, uc.c, target); err != nil {
			s.logf("reconcile %s %s/%s: %v", k.GVK.Kind, u.GetNamespace(), u.GetName(), describeErr(err))
		}
	}()
	return fmt.Sprintf("Reconcile of the source %s %s/%s requested; %s %s/%s follows once it is handled.", kind, ns, name, k.GVK.Kind, u.GetNamespace(), u.GetName()), nil
}

// sameOrigin holds a state-changing request to this dashboard's pages: the token of the page
// (form field or header) and, when the browser sends one, an Origin of this host.
func (s *Server) sameOrigin(r *http.Request) bool {
	token := r.Header.Get("X-CSRF-Token")
	if token == "" {
		token = r.PostFormValue("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) != 1 {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func (s *Server) actionError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	s.errorPage(w, r, code, msg)
}
