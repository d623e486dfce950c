package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/receiver"
	"github.com/plumb-dev/plumb/shared/events"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// MaxBody bounds a webhook call's body.
const MaxBody = 1 << 20

// Server answers Receiver webhooks: it finds the Receiver by its path, checks the call as the
// Receiver's type signs it, and annotates the Receiver's resources so that their controllers
// reconcile them at once. Unknown paths get 404 (no hint whether a path exists), bad signatures
// or tokens 401, malformed bodies 400, bursts beyond the per-path rate 429, a Receiver that
// lacks what its type needs 503. Nothing secret is logged.
//
// Failed calls (401, 400) are limited apart from verified ones, per client address and per
// path: a flood of badly signed calls gets 429 without using up the path's rate, so the real
// caller's next signed call still acts.
type Server struct {
	// Client lists Receivers (cached, by the webhook path index) and patches resources.
	Client client.Client
	// APIReader reads token Secrets, uncached.
	APIReader client.Reader
	// Events records on a Receiver the resources a call was refused (nil records none).
	Events recorder.EventRecorder
	// Tokens verifies the OIDC tokens of gcr and generic-oidc calls, and keeps the issuers'
	// keys (nil: a Tokens of its own, with Google's keys and no address policy).
	Tokens *receiver.Tokens
	// NoCrossNamespaceRefs refuses resources in other namespaces than the Receiver's.
	NoCrossNamespaceRefs bool
	// Rate and Burst bound the verified calls per path (default 10/s, burst 20).
	Rate  rate.Limit
	Burst int
	// FailRate and FailBurst bound the failed calls per client address (default 1/s, burst
	// 10); a path takes five times as many failed calls from all addresses together.
	FailRate  rate.Limit
	FailBurst int

	mu                              sync.Mutex
	calls, failsByAddr, failsByPath map[string]*rate.Limiter
	tokens                          *receiver.Tokens
}

func (s *Server) tokenVerifier() *receiver.Tokens {
	if s.Tokens != nil {
		return s.Tokens
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = &receiver.Tokens{}
	}
	return s.tokens
}

// maxLimiters bounds each limiter map: beyond it, limiters that are full again (their caller
// went quiet) are forgotten.
const maxLimiters = 4096

func (s *Server) limiter(m *map[string]*rate.Limiter, key string, r rate.Limit, b int) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *m == nil {
		*m = map[string]*rate.Limiter{}
	}
	l, ok := (*m)[key]
	if !ok {
		if len(*m) >= maxLimiters {
			now := time.Now()
			for k, l := range *m {
				if l.TokensAt(now) >= float64(l.Burst()) {
					delete(*m, k)
				}
			}
		}
		l = rate.NewLimiter(r, b)
		(*m)[key] = l
	}
	return l
}

// allowCall takes one verified call on path.
func (s *Server) allowCall(path string) bool {
	r, b := s.Rate, s.Burst
	if r == 0 {
		r, b = 10, 20
	}
	return s.limiter(&s.calls, path, r, b).Allow()
}

// allowFailure takes one failed call from addr on path.
func (s *Server) allowFailure(addr, path string) bool {
	r, b := s.FailRate, s.FailBurst
	if r == 0 {
		r, b = 1, 10
	}
	return s.limiter(&s.failsByAddr, addr, r, b).Allow() && s.limiter(&s.failsByPath, path, 5*r, 5*b).Allow()
}

// clientAddr is the caller's IP address (the port changes with every connection). Behind a
// proxy every call has the proxy's: then the per-path limit is what holds a flood back.
func clientAddr(req *http.Request) string {
	if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		return host
	}
	return req.RemoteAddr
}

func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	lg := log.FromContext(ctx).WithName("receiver")
	if !strings.HasPrefix(req.URL.Path, "/hook/") || len(req.URL.Path) != len("/hook/")+64 {
		http.NotFound(w, req)
		return
	}
	var list notifyv1.ReceiverList
	if err := s.Client.List(ctx, &list, client.MatchingFields{WebhookPathIndex: req.URL.Path}); err != nil || len(list.Items) == 0 {
		http.NotFound(w, req)
		return
	}
	// The path must still be the one the current token makes: after a token change the old
	// path is unknown at once, before the Receiver publishes its new one.
	type target struct {
		rcv     *notifyv1.Receiver
		spec    receiver.Spec
		res     receiver.Result
		filters filters
	}
	var targets []target
	for i := range list.Items {
		rcv := &list.Items[i]
		token, data, err := Token(ctx, s.APIReader, rcv)
		if err != nil {
			lg.Error(err, "receiver without token", "receiver", types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Name})
			http.Error(w, "receiver not ready", http.StatusServiceUnavailable)
			return
		}
		if receiver.Path(token, rcv.Name, rcv.Namespace) == req.URL.Path {
			targets = append(targets, target{rcv: rcv, spec: receiver.Spec{Type: rcv.Spec.Type, Token: token, Secret: data, Events: rcv.Spec.Events}})
		}
	}
	if len(targets) == 0 {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	// Every Receiver of the path checks the call before any acts on it.
	filtered := false
	for i := range targets {
		t := &targets[i]
		who := types.NamespacedName{Namespace: t.rcv.Namespace, Name: t.rcv.Name}
		if t.rcv.Spec.Suspend {
			http.Error(w, "receiver suspended", http.StatusServiceUnavailable)
			return
		}
		// A filter that does not compile stalls the Receiver (InvalidCELExpression): it acts
		// on nothing rather than on everything.
		if t.filters, err = compileFilters(t.rcv); err == nil {
			t.spec.Issuers, err = receiver.Issuers(t.rcv.Spec.OIDCProviders)
		}
		if err != nil {
			lg.Info("receiver not ready", "receiver", who, "reason", err.Error())
			http.Error(w, "receiver not ready", http.StatusServiceUnavailable)
			return
		}
		filtered = filtered || t.filters.any()
		t.res, err = s.tokenVerifier().Check(ctx, t.spec, receiver.Call{Header: req.Header, Body: body})
		if err == nil {
			continue
		}
		if errors.Is(err, receiver.ErrNotReady) {
			lg.Info("receiver not ready", "receiver", who, "reason", err.Error())
			http.Error(w, "receiver not ready", http.StatusServiceUnavailable)
			return
		}
		if !s.allowFailure(clientAddr(req), req.URL.Path) {
			http.Error(w, "too many failed calls", http.StatusTooManyRequests)
			return
		}
		if errors.Is(err, receiver.ErrUnauthorized) {
			lg.Info("call refused", "receiver", who, "reason", err.Error())
			msg := "unauthorized"
			// What a generic-oidc validation says is the caller's to read: it says which claim
			// the token must have.
			var ce *receiver.CallerError
			if errors.As(err, &ce) {
				msg += ": " + ce.Message
			}
			http.Error(w, msg, http.StatusUnauthorized)
			return
		}
		lg.Info("malformed call", "receiver", who, "reason", err.Error())
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if !s.allowCall(req.URL.Path) {
		http.Error(w, "too many calls", http.StatusTooManyRequests)
		return
	}
	calls := make([]call, len(targets))
	if filtered {
		for i, t := range targets {
			if calls[i].req, err = requestBody(req.Header, body, t.res.Payload); err != nil {
				lg.Info("malformed call", "reason", err.Error())
				http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
				return
			}
			calls[i].claims = t.res.Claims
		}
	}
	total, refused := 0, 0
	for i, t := range targets {
		rcv := t.rcv
		who := types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Name}
		if !t.res.Trigger {
			lg.Info("call accepted without action", "receiver", who, "event", t.res.Event)
			continue
		}
		n, denied, err := s.annotate(ctx, rcv, t.filters, calls[i])
		if len(denied) > 0 {
			refused += len(denied)
			lg.Info("resources refused", "receiver", who, "refused", denied)
			events.Record(s.Events, rcv, "", corev1.EventTypeWarning, notifyv1.AccessDeniedReason, "refused resources: %s", strings.Join(denied, ", "))
		}
		if err != nil {
			lg.Error(err, "annotating resources", "receiver", who)
			http.Error(w, "could not request reconciles", http.StatusInternalServerError)
			return
		}
		lg.Info("reconcile requested", "receiver", who, "event", t.res.Event, "objects", n)
		total += n
	}
	if refused > 0 {
		_, _ = fmt.Fprintf(w, "reconcile requested for %d object(s); %d resource(s) refused, see the Receiver's status\n", total, refused)
		return
	}
	_, _ = fmt.Fprintf(w, "reconcile requested for %d object(s)\n", total)
}

// annotate sets the reconcile request annotation on every resource the Receiver selects, may
// reach and its filters pass (c is what the call gives them); it returns how many it annotated
// and the resources it refused (see refusal; a kind the API server forbids did not opt in).
func (s *Server) annotate(ctx context.Context, rcv *notifyv1.Receiver, f filters, c call) (int, []string, error) {
	now := time.Now().Format(time.RFC3339Nano)
	patch := plumbreconcile.RequestPatch(now)
	n := 0
	var refused []string
	for i, ref := range rcv.Spec.Resources {
		filter := f.top != nil || f.each[i] != nil
		if why := refusal(rcv, ref, s.NoCrossNamespaceRefs); why != "" {
			refused = append(refused, targetName(rcv, ref)+" ("+why+")")
			continue
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return n, refused, fmt.Errorf("resource apiVersion %q: %w", ref.APIVersion, err)
		}
		ns := ref.Namespace
		if ns == "" {
			ns = rcv.Namespace
		}
		var targets []*unstructured.Unstructured
		if ref.Name != "" && ref.Name != "*" {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gv.WithKind(ref.Kind))
			u.SetNamespace(ns)
			u.SetName(ref.Name)
			// A filter reads the object's metadata: read it (uncached, as every unstructured
			// read here).
			if filter {
				if err := s.Client.Get(ctx, client.ObjectKeyFromObject(u), u); apierrors.IsNotFound(err) {
					continue
				} else if apierrors.IsForbidden(err) {
					refused = append(refused, targetName(rcv, ref)+" ("+forbidden+")")
					continue
				} else if err != nil {
					return n, refused, fmt.Errorf("%s %s/%s: %w", ref.Kind, ns, ref.Name, err)
				}
			}
			targets = append(targets, u)
		} else {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(gv.WithKind(ref.Kind + "List"))
			if err := s.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels(ref.MatchLabels)); apierrors.IsForbidden(err) {
				refused = append(refused, targetName(rcv, ref)+" ("+forbidden+")")
				continue
			} else if err != nil {
				return n, refused, fmt.Errorf("listing %s in %s: %w", ref.Kind, ns, err)
			}
			for i := range list.Items {
				targets = append(targets, &list.Items[i])
			}
		}
		for _, u := range targets {
			if filter {
				if ok, err := f.pass(ctx, i, u, c); err != nil {
					// An expression that fails on this object (a field the call did not send)
					// passes it over, as false would; the Receiver's events say why.
					events.Record(s.Events, rcv, "", corev1.EventTypeWarning, notifyv1.InvalidCELExpressionReason,
						"%s %s/%s not reconciled: %v", ref.Kind, u.GetNamespace(), u.GetName(), err)
					continue
				} else if !ok {
					continue
				}
			}
			if err := s.Client.Patch(ctx, u, patch); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				if apierrors.IsForbidden(err) {
					refused = append(refused, targetName(rcv, ref)+" ("+forbidden+")")
					break
				}
				return n, refused, fmt.Errorf("%s %s/%s: %w", ref.Kind, u.GetNamespace(), u.GetName(), err)
			}
			n++
		}
	}
	return n, refused, nil
}
