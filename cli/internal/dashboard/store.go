package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/ops"
)

// store keeps every Plumb object the dashboard's identity may list, and the Events of Plumb
// objects, in memory through watches (one per installed kind, and one Event watch per kind,
// filtered by the API server), and tells the hub about each change. Pages read the store, not
// the API server.
type store struct {
	// Installed are the kinds the cluster serves and the identity may list; Missing the kinds
	// whose CRD is not installed; Unreadable the kinds the identity may not list.
	Installed, Missing, Unreadable []kinds.Kind
	// Scope is the namespace a kind is watched in: "" for all.
	Scope map[string]string

	objects map[string]cache.SharedIndexInformer // by kind name
	events  []cache.SharedIndexInformer
	hub     *hub

	// rows are the overview's rows, computed once per change of an object rather than per page.
	mu   sync.RWMutex
	rows map[string]row
}

// byInvolved indexes Events by the object they are about, as a key.
const byInvolved = "involved"

// startStore discovers the installed kinds, starts their watches and waits until the first
// list of each is in memory. ns is where a kind is watched when the identity may not list it
// in all namespaces.
func startStore(ctx context.Context, cfg *rest.Config, ns string, h *hub) (*store, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	installed, missing, err := discover(cs.Discovery())
	if err != nil {
		return nil, err
	}
	s := &store{Missing: missing, Scope: map[string]string{}, objects: map[string]cache.SharedIndexInformer{}, hub: h, rows: map[string]row{}}
	var synced []cache.InformerSynced
	for _, k := range installed {
		scope, ok, err := listScope(ctx, cs, k.GVK.Group, k.Names[0], ns)
		if err != nil {
			return nil, err
		}
		if !ok {
			s.Unreadable = append(s.Unreadable, k)
			continue
		}
		s.Installed = append(s.Installed, k)
		s.Scope[k.GVK.Kind] = scope
		inf := dynamicInformer(dyn, k, scope)
		reg, err := inf.AddEventHandler(s.objectHandler())
		if err != nil {
			return nil, err
		}
		s.objects[k.GVK.Kind] = inf
		synced = append(synced, reg.HasSynced) // every object of the first list handled: rows complete
		go inf.Run(ctx.Done())

		// The Events of this kind, where the identity may read them.
		evScope, ok, err := listScope(ctx, cs, "", "events", scope)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		ev := eventInformer(cs, k, evScope)
		reg, err = ev.AddEventHandler(s.eventHandler())
		if err != nil {
			return nil, err
		}
		s.events = append(s.events, ev)
		synced = append(synced, reg.HasSynced)
		go ev.Run(ctx.Done())
	}
	if len(s.Installed) == 0 {
		if len(s.Unreadable) > 0 {
			return nil, fmt.Errorf("you may not list any of Plumb's kinds (%s, …) here; ask for read access", s.Unreadable[0].Names[0])
		}
		return nil, errors.New("none of Plumb's kinds is installed in this cluster (see plumb install)")
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil, fmt.Errorf("watching Plumb's objects: %w", context.Cause(ctx))
	}
	return s, nil
}

// discover splits Plumb's kinds into those the cluster serves and those it does not: a team
// may install only some controllers.
func discover(d discovery.DiscoveryInterface) (installed, missing []kinds.Kind, err error) {
	served := map[string]map[string]bool{}
	for _, k := range kinds.All {
		gv := k.GVK.GroupVersion().String()
		if _, ok := served[gv]; !ok {
			served[gv] = map[string]bool{}
			list, err := d.ServerResourcesForGroupVersion(gv)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return nil, nil, fmt.Errorf("cannot ask the cluster which kinds it serves: %w", err)
			default:
				for _, r := range list.APIResources {
					served[gv][r.Kind] = true
				}
			}
		}
		if served[gv][k.GVK.Kind] {
			installed = append(installed, k)
		} else {
			missing = append(missing, k)
		}
	}
	return installed, missing, nil
}

// listScope says where the dashboard's identity may list and watch a resource: "" for every
// namespace, else ns; ok is false when not even there.
func listScope(ctx context.Context, cs kubernetes.Interface, group, resource, ns string) (string, bool, error) {
	for _, scope := range []string{"", ns} {
		ok := true
		for _, verb := range []string{"list", "watch"} {
			allowed, err := selfAllowed(ctx, cs, authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: scope})
			if err != nil {
				return "", false, err
			}
			ok = ok && allowed
		}
		if ok {
			return scope, true, nil
		}
		if ns == "" {
			break
		}
	}
	return "", false, nil
}

// selfAllowed asks the API server whether the client's own identity may do something.
func selfAllowed(ctx context.Context, cs kubernetes.Interface, attrs authorizationv1.ResourceAttributes) (bool, error) {
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("cannot ask the cluster what you may do: %w", err)
	}
	return r.Status.Allowed, nil
}

func dynamicInformer(dyn dynamic.Interface, k kinds.Kind, ns string) cache.SharedIndexInformer {
	gvr := k.GVK.GroupVersion().WithResource(k.Names[0])
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return dyn.Resource(gvr).Namespace(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return dyn.Resource(gvr).Namespace(ns).Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	// Managed fields are most of an object's bytes, and nothing the dashboard shows.
	_ = inf.SetTransform(func(o any) (any, error) {
		if u, ok := o.(*unstructured.Unstructured); ok {
			u.SetManagedFields(nil)
		}
		return o, nil
	})
	return inf
}

func eventInformer(cs kubernetes.Interface, k kinds.Kind, ns string) cache.SharedIndexInformer {
	selector := fields.SelectorFromSet(ops.EventSelector(k)).String()
	lw := cache.NewFilteredListWatchFromClient(cs.CoreV1().RESTClient(), "events", ns, func(o *metav1.ListOptions) {
		o.FieldSelector = selector
	})
	inf := cache.NewSharedIndexInformer(lw, &corev1.Event{}, 0, cache.Indexers{byInvolved: func(o any) ([]string, error) {
		e, ok := o.(*corev1.Event)
		if !ok {
			return nil, nil
		}
		return []string{involvedKey(e)}, nil
	}})
	_ = inf.SetTransform(func(o any) (any, error) {
		if e, ok := o.(*corev1.Event); ok {
			e.ManagedFields = nil
		}
		return o, nil
	})
	return inf
}

// involvedKey is the key of the object an Event is about.
func involvedKey(e *corev1.Event) string {
	group := e.InvolvedObject.GroupVersionKind().Group
	ns := e.InvolvedObject.Namespace
	if ns == "" {
		ns = e.Namespace
	}
	return objectKey(group, e.InvolvedObject.Kind, ns, e.InvolvedObject.Name)
}

func (s *store) objectHandler() cache.ResourceEventHandler {
	changed := func(o any) {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return
		}
		r := rowOf(u)
		s.mu.Lock()
		s.rows[r.Key] = r
		s.mu.Unlock()
		s.hub.publish(rowMessage(r))
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		UpdateFunc: func(_, o any) { changed(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if u, ok := o.(*unstructured.Unstructured); ok {
				key := keyOf(u)
				s.mu.Lock()
				delete(s.rows, key)
				s.mu.Unlock()
				s.hub.publish(message{Type: "object", Key: key, Deleted: true})
			}
		},
	}
}

// Rows returns the overview's row of every object in the store.
func (s *store) Rows() []row {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]row, 0, len(s.rows))
	for _, r := range s.rows {
		out = append(out, r)
	}
	return out
}

func (s *store) eventHandler() cache.ResourceEventHandler {
	send := func(o any) {
		if e, ok := o.(*corev1.Event); ok {
			s.hub.publish(eventMessage(e))
		}
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: send, UpdateFunc: func(_, o any) { send(o) }}
}

// All returns every object in the store.
func (s *store) All() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, k := range s.Installed {
		for _, o := range s.objects[k.GVK.Kind].GetStore().List() {
			out = append(out, o.(*unstructured.Unstructured))
		}
	}
	return out
}

// Get returns an object of a kind, or nil. The object is the store's: never change it.
func (s *store) Get(kind, ns, name string) *unstructured.Unstructured {
	inf, ok := s.objects[kind]
	if !ok {
		return nil
	}
	o, found, err := inf.GetStore().GetByKey(ns + "/" + name)
	if err != nil || !found {
		return nil
	}
	return o.(*unstructured.Unstructured)
}

// Watched says whether a kind is installed and watched.
func (s *store) Watched(kind string) bool {
	_, ok := s.objects[kind]
	return ok
}

// Events returns the Events about an object, newest first.
func (s *store) Events(key string) []*corev1.Event {
	var out []*corev1.Event
	for _, inf := range s.events {
		items, err := inf.GetIndexer().ByIndex(byInvolved, key)
		if err != nil {
			continue
		}
		for _, o := range items {
			out = append(out, o.(*corev1.Event))
		}
	}
	sort.Slice(out, func(i, j int) bool { return ops.LastSeen(*out[i]).After(ops.LastSeen(*out[j])) })
	return out
}

// waitFor waits until cond holds for the object of a kind, checking at each change of it,
// until ctx ends.
func (s *store) waitFor(ctx context.Context, kind, ns, name string, cond func(*unstructured.Unstructured) bool) error {
	sub := s.hub.subscribe()
	defer s.hub.unsubscribe(sub)
	tick := time.NewTicker(time.Second) // also a safety net for a message dropped under load
	defer tick.Stop()
	for {
		if o := s.Get(kind, ns, name); o != nil && cond(o) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.ch: // any change wakes the check, which reads the store
		case <-tick.C:
		}
	}
}
