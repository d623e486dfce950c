package setters

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestDebugOne(t *testing.T) {
	b, _ := os.ReadFile(os.Getenv("F"))
	line := strings.Split(string(b), "\n")[1]
	s, _ := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
	in := []byte(s)
	p, _ := plan(in, fuzzRefs)
	out := splice(in, p.edits)
	after, _ := decodeAll(out)
	t.Logf("%q\n%q\n%q\n%q", in, out, comments(p.docs[0], nil), comments(after[0], nil))
}
