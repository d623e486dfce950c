package notify

import (
	"slices"
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
				if got := s.Decide("alert/obj", st.failure, "Failed", t0.Add(st.at), c.notifyOn, c.alertAfter).Send; got != st.want {
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
	d := s.Decide("k", true, "Failed", t0, on, time.Minute)
	if d.Send || d.CheckIn != time.Minute {
		t.Fatalf("first failure: send %v, check in %s", d.Send, d.CheckIn)
	}
	if again := s.Decide("k", true, "Failed", t0.Add(10*time.Second), on, time.Minute).CheckIn; again != 0 {
		t.Fatal("a second check was asked for")
	}
	if !s.Due("k", "Failed", t0.Add(time.Minute), time.Minute) {
		t.Fatal("a failure that lasted alertAfter was not due")
	}
	if s.Due("k", "Failed", t0.Add(2*time.Minute), time.Minute) {
		t.Fatal("a failure was due twice")
	}
	if d := s.Decide("k", false, "Succeeded", t0.Add(3*time.Minute), on, time.Minute); !d.Send || !slices.Equal(d.Recovers, []string{"Failed"}) {
		t.Fatalf("the recovery of a failure sent when due: %+v", d)
	}

	s.Decide("j", true, "Failed", t0, on, time.Minute)
	s.Decide("j", false, "Succeeded", t0.Add(30*time.Second), on, time.Minute)
	if s.Due("j", "Failed", t0.Add(time.Minute), time.Minute) {
		t.Fatal("a healed failure was due")
	}

	s.Decide("old", true, "Failed", t0, on, 0)
	s.Sweep(t0.Add(time.Second))
	if s.Decide("old", false, "Succeeded", t0.Add(2*time.Second), on, 0).Send {
		t.Fatal("a swept state still sent a recovery")
	}
}

// A recovery names the failures it ends, each reason once, with or without notifyOn; a success
// that ends nothing names none.
func TestStatesRecovers(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, on := range [][]string{nil, {OnFailure, OnRecovery, OnChange}} {
		var s States
		if d := s.Decide("k", false, "Succeeded", t0, on, 0); !d.Send || d.Recovers != nil {
			t.Fatalf("notifyOn %v: a first success %+v", on, d)
		}
		s.Decide("k", true, "BuildFailed", t0.Add(1), on, 0)
		s.Decide("k", true, "HealthCheckFailed", t0.Add(2), on, 0)
		s.Decide("k", true, "BuildFailed", t0.Add(3), on, 0)
		want := []string{"BuildFailed", "HealthCheckFailed"}
		if on != nil {
			want = want[:1] // a stateful Alert sends the first failure only
		}
		if d := s.Decide("k", false, "Succeeded", t0.Add(4), on, 0); !d.Send || !slices.Equal(d.Recovers, want) {
			t.Fatalf("notifyOn %v: the recovery %+v, want Recovers %v", on, d, want)
		}
		if d := s.Decide("k", false, "Succeeded", t0.Add(5), on, 0); !d.Send || d.Recovers != nil {
			t.Fatalf("notifyOn %v: a success after the recovery %+v", on, d)
		}
	}
}

// A wait (SourceNotReady, Flux's Progressing) during a failure is not its recovery: the
// recovery comes with the success after it, and names the failure.
func TestStatesWaitIsNoRecovery(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, on := range [][]string{nil, {OnFailure, OnRecovery}} {
		var s States
		s.Decide("k", true, "BuildFailed", t0, on, 0)
		if d := s.Decide("k", false, "SourceNotReady", t0.Add(1), on, 0); d.Recovers != nil || d.Send != (on == nil) {
			t.Fatalf("notifyOn %v: a wait during a failure %+v", on, d)
		}
		if d := s.Decide("k", false, "Progressing", t0.Add(2), on, 0); d.Recovers != nil {
			t.Fatalf("notifyOn %v: Progressing during a failure %+v", on, d)
		}
		if d := s.Decide("k", true, "BuildFailed", t0.Add(3), on, 0); d.Send != (on == nil) {
			t.Fatalf("notifyOn %v: the failure goes on after the wait, sent again: %+v", on, d)
		}
		if d := s.Decide("k", false, "Succeeded", t0.Add(4), on, 0); !d.Send || !slices.Equal(d.Recovers, []string{"BuildFailed"}) {
			t.Fatalf("notifyOn %v: the recovery after a wait %+v", on, d)
		}
	}
}
