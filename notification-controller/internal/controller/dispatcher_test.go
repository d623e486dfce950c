package controller

import (
	"testing"
	"time"
)

func TestDuplicateWindow(t *testing.T) {
	d := &Dispatcher{DedupWindow: time.Hour}
	if d.duplicate("a") {
		t.Fatal("a first event is not a duplicate")
	}
	if !d.duplicate("a") {
		t.Fatal("the same event within the window is a duplicate")
	}
	if d.duplicate("b") {
		t.Fatal("another event is not a duplicate")
	}
	off := &Dispatcher{}
	for range 2 {
		if off.duplicate("a") {
			t.Fatal("with no window nothing is a duplicate")
		}
	}
}
