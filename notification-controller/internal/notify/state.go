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
	failingSince, lastSeen time.Time
	sent                   bool
	// due: a check at failingSince+alertAfter is asked for (see Decide).
	due bool
}

// Decide says whether an event of the object (failure: a Warning) at now is sent, for an Alert
// with notifyOn (empty: every event) and alertAfter. key names the Alert and the object. A
// failure that has not lasted alertAfter yet is not sent; the first time, Decide returns how
// long to wait before calling Due, as a failing object may fall silent (its events repeat
// without new Events).
func (s *States) Decide(key string, failure bool, now time.Time, notifyOn []string, alertAfter time.Duration) (send bool, checkIn time.Duration) {
	if len(notifyOn) == 0 {
		return true, 0
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
		st.lastSeen = now
		if st.sent || !slices.Contains(notifyOn, OnFailure) {
			return false, 0
		}
		if wait := alertAfter - now.Sub(st.failingSince); wait > 0 {
			if st.due {
				return false, 0
			}
			st.due = true
			return false, wait
		}
		st.sent = true
		return true, 0
	}
	if st != nil {
		delete(s.m, key)
		return st.sent && slices.Contains(notifyOn, OnRecovery), 0
	}
	return slices.Contains(notifyOn, OnChange), 0
}

// Due says, at the time Decide asked for, whether the failure is still going on and not sent
// (then it is sent now).
func (s *States) Due(key string, now time.Time, alertAfter time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[key]
	if st == nil {
		return false
	}
	st.due = false
	if st.sent || now.Sub(st.failingSince) < alertAfter {
		return false
	}
	st.sent = true
	return true
}

// Sweep forgets the objects not heard of since before: deleted while failing, say.
func (s *States) Sweep(before time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, st := range s.m {
		if st.lastSeen.Before(before) {
			delete(s.m, k)
		}
	}
}
