package notify

import (
	"slices"
	"sync"
	"time"
)

// NotifyOn values.
const (
	OnFailure  = "Failure"
	OnRecovery = "Recovery"
	OnChange   = "Change"
)

// States remembers, per Alert and object, whether the object is failing, since when, and
// whether that failure was sent, so that an Alert with notifyOn sends a failure once, its
// recovery once, and nothing per retry.
type States struct {
	mu sync.Mutex
	m  map[string]*state
}

type state struct {
	failingSince time.Time
	sent         bool
}

// Decide says whether an event of the object (failure: a Warning) is sent, for an Alert with
// notifyOn (empty: every event) and alertAfter. key names the Alert and the object.
func (s *States) Decide(key string, failure bool, now time.Time, notifyOn []string, alertAfter time.Duration) bool {
	if len(notifyOn) == 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*state{}
	}
	st := s.m[key]
	if failure {
		if st == nil {
			st = &state{failingSince: now}
			s.m[key] = st
		}
		if st.sent || !slices.Contains(notifyOn, OnFailure) || now.Sub(st.failingSince) < alertAfter {
			return false
		}
		st.sent = true
		return true
	}
	if st != nil {
		delete(s.m, key)
		return st.sent && slices.Contains(notifyOn, OnRecovery)
	}
	return slices.Contains(notifyOn, OnChange)
}
