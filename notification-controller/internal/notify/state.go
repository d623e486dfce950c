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
// which of its failures were sent, so that an Alert with notifyOn sends a failure once, its
// recovery once, and nothing per retry; and so that any Alert's recovery names the failures it
// ends (incident services close what those opened).
type States struct {
	mu sync.Mutex
	m  map[string]*state
}

type state struct {
	failingSince, lastSeen time.Time
	sent                   bool
	// reasons of the failures sent, in order, each once.
	reasons []string
	// due: a check at failingSince+alertAfter is asked for (see Decide).
	due bool
}

// Decision is what Decide says of an event.
type Decision struct {
	// Send: the event is sent now.
	Send bool
	// CheckIn, when set, is how long to wait before calling Due: a failure not sent yet may
	// fall silent (its events repeat without new Events).
	CheckIn time.Duration
	// Recovers, on the success that ends a failure that was sent, holds the reasons of the
	// failures sent (Notification.Recovers).
	Recovers []string
}

// Decide says whether an event of the object (failure: a Warning, with its reason) at now is
// sent, for an Alert with notifyOn (empty: every event) and alertAfter. key names the Alert
// and the object. A failure that has not lasted alertAfter yet is not sent; the first time,
// the Decision asks for a check (CheckIn).
func (s *States) Decide(key string, failure bool, reason string, now time.Time, notifyOn []string, alertAfter time.Duration) Decision {
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
		if len(notifyOn) == 0 {
			st.opened(reason)
			return Decision{Send: true}
		}
		if st.sent || !slices.Contains(notifyOn, OnFailure) {
			return Decision{}
		}
		if wait := alertAfter - now.Sub(st.failingSince); wait > 0 {
			if st.due {
				return Decision{}
			}
			st.due = true
			return Decision{CheckIn: wait}
		}
		st.opened(reason)
		return Decision{Send: true}
	}
	if st != nil && waiting(reason) {
		// Waiting for something (a source, a dependency) ends no failure: it is no recovery.
		st.lastSeen = now
		return Decision{Send: len(notifyOn) == 0}
	}
	if st != nil {
		delete(s.m, key)
		if st.sent && (len(notifyOn) == 0 || slices.Contains(notifyOn, OnRecovery)) {
			return Decision{Send: true, Recovers: st.reasons}
		}
		return Decision{Send: len(notifyOn) == 0}
	}
	return Decision{Send: len(notifyOn) == 0 || slices.Contains(notifyOn, OnChange)}
}

// waitReasons are the reasons of the Normal events that say an object waits for something
// (docs/contracts/conditions.md, category wait, and Flux's Progressing).
var waitReasons = []string{"DependencyNotReady", "SourceNotReady", "ClusterNotReady", "ProviderNotReady", "HostBusy",
	"HealthCheckCanceled", "VerificationRequired", "Progressing", "ProgressingWithRetry"}

// waiting says whether a Normal event's reason is a wait: the object is not failing, nor has it
// recovered.
func waiting(reason string) bool { return slices.Contains(waitReasons, reason) }

// opened records that a failure of reason was sent.
func (st *state) opened(reason string) {
	st.sent = true
	if !slices.Contains(st.reasons, reason) {
		st.reasons = append(st.reasons, reason)
	}
}

// Due says, at the time Decide asked for, whether the failure (of reason) is still going on
// and not sent (then it is sent now).
func (s *States) Due(key, reason string, now time.Time, alertAfter time.Duration) bool {
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
	st.opened(reason)
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
