package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// message is one change the watches saw, as pages receive it: an object's new state, or an
// Event about an object.
type message struct {
	// Type is the server-sent event's type: "object" or "event".
	Type string `json:"-"`
	Key  string `json:"key"`

	Deleted   bool   `json:"deleted,omitempty"`
	State     state  `json:"state,omitempty"`
	Symbol    string `json:"symbol,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
	Revision  string `json:"revision,omitempty"`
	Pending   bool   `json:"pending,omitempty"`
	Suspended bool   `json:"suspended,omitempty"`

	EventType string `json:"eventType,omitempty"`
}

func rowMessage(r row) message {
	return message{Type: "object", Key: r.Key, State: r.State, Symbol: r.State.Symbol(), Reason: r.Reason,
		Message: r.Message, Revision: r.Revision, Pending: r.Pending, Suspended: r.State == stateSuspended}
}

func eventMessage(e *corev1.Event) message {
	return message{Type: "event", Key: involvedKey(e), EventType: e.Type, Reason: e.Reason, Message: oneLine(e.Message, 160),
		Revision: e.Annotations["plumb.dev/revision"]}
}

// hub hands each change to every page listening. A page that does not keep up loses messages
// and is told to reload its data instead.
type hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch   chan message
	lost atomic.Bool
}

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

func (h *hub) subscribe() *subscriber {
	s := &subscriber{ch: make(chan message, 256)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

func (h *hub) publish(m message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- m:
		default:
			s.lost.Store(true)
		}
	}
}

// keepAlive is how often an idle stream gets a comment, so that proxies keep it open.
const keepAlive = 15 * time.Second

// serveEvents streams changes as server-sent events: "object" and "event" messages as JSON,
// and "resync" when messages were lost.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported here", http.StatusInternalServerError)
		return
	}
	sub := s.hub.subscribe()
	defer s.hub.unsubscribe(sub)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: connected\n\n")
	flusher.Flush()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case m := <-sub.ch:
			if sub.lost.Swap(false) {
				fmt.Fprint(w, "event: resync\ndata: {}\n\n")
			}
			data, err := json.Marshal(m)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m.Type, data)
		}
		flusher.Flush()
	}
}
