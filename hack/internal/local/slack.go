package local

import (
	"encoding/json"
	"net/http"
	"sync"
)

// SlackSink stands in for Slack's incoming webhooks on loopback: it keeps the text of each
// message.
type SlackSink struct {
	mu    sync.Mutex
	texts []string
}

func (s *SlackSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Text string `json:"text"`
	}
	_ = json.NewDecoder(r.Body).Decode(&msg)
	s.mu.Lock()
	s.texts = append(s.texts, msg.Text)
	s.mu.Unlock()
	_, _ = w.Write([]byte("ok"))
}

// Received returns the texts of the messages so far, oldest first.
func (s *SlackSink) Received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.texts...)
}
