package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/receiver"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// MaxBody bounds a webhook call's body.
const MaxBody = 1 << 20

// Server answers Receiver webhooks: it finds the Receiver by its path, checks the call as the
// Receiver's type signs it, and annotates the Receiver's resources so that their controllers
// reconcile them at once. Unknown paths get 404 (no hint whether a path exists), bad signatures
// 401, malformed bodies 400, bursts beyond the per-path rate 429. Nothing secret is logged.
type Server struct {
	// Client lists Receivers (cached, by the webhook path index) and patches resources.
	Client client.Client
	// APIReader reads token Secrets, uncached.
	APIReader client.Reader
	// Rate and Burst bound the calls per path (default 10/s, burst 20).
	Rate  rate.Limit
	Burst int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func (s *Server) limiter(path string) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limiters == nil {
		s.limiters = map[string]*rate.Limiter{}
	}
	l, ok := s.limiters[path]
	if !ok {
		r, b := s.Rate, s.Burst
		if r == 0 {
			r, b = 10, 20
		}
		l = rate.NewLimiter(r, b)
		s.limiters[path] = l
	}
	return l
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
		rcv   *notifyv1.Receiver
		token string
	}
	var targets []target
	for i := range list.Items {
		rcv := &list.Items[i]
		token, err := Token(ctx, s.APIReader, rcv)
		if err != nil {
			lg.Error(err, "receiver without token", "receiver", types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Name})
			http.Error(w, "receiver not ready", http.StatusServiceUnavailable)
			return
		}
		if receiver.Path(token, rcv.Name, rcv.Namespace) == req.URL.Path {
			targets = append(targets, target{rcv, token})
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
	if !s.limiter(req.URL.Path).Allow() {
		http.Error(w, "too many calls", http.StatusTooManyRequests)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	total := 0
	for _, t := range targets {
		rcv := t.rcv
		who := types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Name}
		if rcv.Spec.Suspend {
			http.Error(w, "receiver suspended", http.StatusServiceUnavailable)
			return
		}
		res, err := receiver.Verify(rcv.Spec.Type, t.token, rcv.Spec.Events, receiver.Call{Header: req.Header, Body: body})
		switch {
		case errors.Is(err, receiver.ErrUnauthorized):
			lg.Info("call refused", "receiver", who, "reason", err.Error())
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		case err != nil:
			lg.Info("malformed call", "receiver", who, "reason", err.Error())
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		case !res.Trigger:
			lg.Info("call accepted without action", "receiver", who, "event", res.Event)
			continue
		}
		n, err := s.annotate(ctx, rcv)
		if err != nil {
			lg.Error(err, "annotating resources", "receiver", who)
			http.Error(w, "could not request reconciles", http.StatusInternalServerError)
			return
		}
		lg.Info("reconcile requested", "receiver", who, "event", res.Event, "objects", n)
		total += n
	}
	_, _ = fmt.Fprintf(w, "reconcile requested for %d object(s)\n", total)
}

// annotate sets the reconcile request annotation on every resource the Receiver selects.
func (s *Server) annotate(ctx context.Context, rcv *notifyv1.Receiver) (int, error) {
	now := time.Now().Format(time.RFC3339Nano)
	patch := plumbreconcile.RequestPatch(now)
	n := 0
	for _, ref := range rcv.Spec.Resources {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return n, fmt.Errorf("resource apiVersion %q: %w", ref.APIVersion, err)
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
			targets = append(targets, u)
		} else {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(gv.WithKind(ref.Kind + "List"))
			if err := s.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels(ref.MatchLabels)); err != nil {
				return n, fmt.Errorf("listing %s in %s: %w", ref.Kind, ns, err)
			}
			for i := range list.Items {
				targets = append(targets, &list.Items[i])
			}
		}
		for _, u := range targets {
			if err := s.Client.Patch(ctx, u, patch); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return n, fmt.Errorf("%s %s/%s: %w", ref.Kind, u.GetNamespace(), u.GetName(), err)
			}
			n++
		}
	}
	return n, nil
}
