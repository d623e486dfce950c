package controller

import (
	"testing"
	"time"
)

func TestDuplicateWindow(t *testing.T) {
	t0 := time.Unix(0, 0)
	d := &Dispatcher{DedupWindow: time.Hour, seen: map[string]time.Time{}}
	if d.duplicate("a", t0) {
		t.Fatal("a first event is not a duplicate")
	}
	if !d.duplicate("a", t0.Add(time.Minute)) {
		t.Fatal("the same event within the window is a duplicate")
	}
	if d.duplicate("b", t0) {
		t.Fatal("another event is not a duplicate")
	}
	if d.duplicate("a", t0.Add(2*time.Hour)) {
		t.Fatal("the same event after the window is not a duplicate")
	}
	off := &Dispatcher{}
	for range 2 {
		if off.duplicate("a", t0) {
			t.Fatal("with no window nothing is a duplicate")
		}
	}
}
