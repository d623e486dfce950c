package nettest

import (
	"net"
	"testing"
	"time"
)

func TestHangingAcceptsAndNeverAnswers(t *testing.T) {
	s := NewHanging(t)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Fatalf("the server answered: %d bytes, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Accepted() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d connections, want 1", s.Accepted())
		}
		time.Sleep(time.Millisecond) // a poll with a deadline
	}
}
