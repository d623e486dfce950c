package events

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	short := strings.Repeat("a", NoteLimit)
	if got := Truncate(short); got != short {
		t.Errorf("a message of %d bytes is changed", NoteLimit)
	}
	for _, long := range []string{strings.Repeat("a", 5000), strings.Repeat("é", 700), strings.Repeat("ab€", 400)} {
		got := Truncate(long)
		if len(got) > NoteLimit || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("Truncate of %d bytes gave %d bytes, valid UTF-8 %v, ends %q", len(long), len(got), utf8.ValidString(got), got[len(got)-5:])
		}
		if !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
			t.Errorf("Truncate does not keep the message's start")
		}
	}
}
