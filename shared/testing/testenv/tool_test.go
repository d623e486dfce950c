package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands in for a test, keeping what NeedTool asked of it.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestNeedTool(t *testing.T) {
	const missing = "plumb-no-such-program"
	cases := []struct {
		name, ci, tool     string
		wantSkip, wantFail bool
	}{
		{name: "installed", tool: "sh"},
		{name: "installed on CI", ci: "true", tool: "sh"},
		{name: "missing", tool: missing, wantSkip: true},
		{name: "missing on CI", ci: "true", tool: missing, wantFail: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			path := NeedTool(r, tc.tool)
			if got := r.skipped != ""; got != tc.wantSkip {
				t.Errorf("skipped %q, want a skip: %v", r.skipped, tc.wantSkip)
			}
			if got := r.failed != ""; got != tc.wantFail {
				t.Errorf("failed %q, want a failure: %v", r.failed, tc.wantFail)
			}
			if msg := r.skipped + r.failed; msg != "" && !strings.HasPrefix(msg, "needs tool "+missing+":") {
				t.Errorf("message %q does not start with %q", msg, "needs tool "+missing+":")
			}
			if (path == "") != (tc.tool == missing) {
				t.Errorf("path %q for %s", path, tc.tool)
			}
		})
	}
}
