package notify

import (
	"testing"
	"time"
)

func TestStatesDecide(t *testing.T) {
	t0 := time.Unix(0, 0)
	type step struct {
		failure bool
		at      time.Duration
		want    bool
	}
	cases := []struct {
		name       string
		notifyOn   []string
		alertAfter time.Duration
		steps      []step
	}{
		{"stateless sends all", nil, 0, []step{{true, 0, true}, {true, 1, true}, {false, 2, true}, {false, 3, true}}},
		{"a failure once, its recovery once, changes", []string{OnFailure, OnRecovery, OnChange}, 0,
			[]step{{false, 0, true}, {true, 1, true}, {true, 2, false}, {true, 3, false}, {false, 4, true}, {false, 5, true}}},
		{"failures only", []string{OnFailure}, 0, []step{{false, 0, false}, {true, 1, true}, {false, 2, false}, {true, 3, true}}},
		{"alertAfter keeps short failures quiet", []string{OnFailure, OnRecovery}, time.Minute,
			[]step{{true, 0, false}, {true, 30 * time.Second, false}, {false, 40 * time.Second, false}, // healed: nothing, no recovery
				{true, 2 * time.Minute, false}, {true, 3*time.Minute + time.Second, true}, {true, 4 * time.Minute, false}, {false, 5 * time.Minute, true}}},
		{"no recovery without a sent failure", []string{OnRecovery}, 0, []step{{true, 0, false}, {false, 1, false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s States
			for i, st := range c.steps {
				if got, _ := s.Decide("alert/obj", st.failure, t0.Add(st.at), c.notifyOn, c.alertAfter); got != st.want {
					t.Fatalf("step %d (failure %v at %s) = %v, want %v", i, st.failure, st.at, got, st.want)
				}
			}
		})
	}
}

// A failure that falls silent is sent once alertAfter has passed, through Due; a recovery before
// then cancels it.
func TestStatesDue(t *testing.T) {
	t0 := time.Unix(0, 0)
	on := []string{OnFailure, OnRecovery}
	var s States
	send, in := s.Decide("k", true, t0, on, time.Minute)
	if send || in != time.Minute {
		t.Fatalf("first failure: send %v, check in %s", send, in)
	}
	if _, again := s.Decide("k", true, t0.Add(10*time.Second), on, time.Minute); again != 0 {
		t.Fatal("a second check was asked for")
	}
	if !s.Due("k", t0.Add(time.Minute), time.Minute) {
		t.Fatal("a failure that lasted alertAfter was not due")
	}
	if s.Due("k", t0.Add(2*time.Minute), time.Minute) {
		t.Fatal("a failure was due twice")
	}
	if send, _ := s.Decide("k", false, t0.Add(3*time.Minute), on, time.Minute); !send {
		t.Fatal("the recovery of a sent failure was not sent")
	}

	s.Decide("j", true, t0, on, time.Minute)
	s.Decide("j", false, t0.Add(30*time.Second), on, time.Minute)
	if s.Due("j", t0.Add(time.Minute), time.Minute) {
		t.Fatal("a healed failure was due")
	}

	s.Decide("old", true, t0, on, 0)
	s.Sweep(t0.Add(time.Second))
	if send, _ := s.Decide("old", false, t0.Add(2*time.Second), on, 0); send {
		t.Fatal("a swept state still sent a recovery")
	}
}
