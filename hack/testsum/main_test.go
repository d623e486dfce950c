package main

import (
	"strings"
	"testing"
)

// A run of two packages as `go test -json` writes it: one test passes, one fails, one is skipped
// for a missing tool, one is skipped for another reason, and one package has no test files.
const stream = `{"Action":"start","Package":"example.com/a"}
{"Action":"run","Package":"example.com/a","Test":"TestPass"}
{"Action":"output","Package":"example.com/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"output","Package":"example.com/a","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"example.com/a","Test":"TestPass","Elapsed":0}
{"Action":"run","Package":"example.com/a","Test":"TestRegistry"}
{"Action":"output","Package":"example.com/a","Test":"TestRegistry","Output":"=== RUN   TestRegistry\n"}
{"Action":"output","Package":"example.com/a","Test":"TestRegistry","Output":"    oci_test.go:12: needs tool docker-registry: docker-registry is not installed\n"}
{"Action":"output","Package":"example.com/a","Test":"TestRegistry","Output":"--- SKIP: TestRegistry (0.00s)\n"}
{"Action":"skip","Package":"example.com/a","Test":"TestRegistry","Elapsed":0}
{"Action":"output","Package":"example.com/a","Output":"ok  \texample.com/a\t0.1s\n"}
{"Action":"pass","Package":"example.com/a","Elapsed":0.1}
{"Action":"start","Package":"example.com/b"}
{"Action":"run","Package":"example.com/b","Test":"TestSlow"}
{"Action":"output","Package":"example.com/b","Test":"TestSlow","Output":"=== RUN   TestSlow\n"}
{"Action":"output","Package":"example.com/b","Test":"TestSlow","Output":"    slow_test.go:9: slow: not in -short mode\n"}
{"Action":"output","Package":"example.com/b","Test":"TestSlow","Output":"--- SKIP: TestSlow (0.00s)\n"}
{"Action":"skip","Package":"example.com/b","Test":"TestSlow","Elapsed":0}
{"Action":"run","Package":"example.com/b","Test":"TestFail"}
{"Action":"output","Package":"example.com/b","Test":"TestFail","Output":"=== RUN   TestFail\n"}
{"Action":"output","Package":"example.com/b","Test":"TestFail","Output":"    fail_test.go:5: got 1, want 2\n"}
{"Action":"output","Package":"example.com/b","Test":"TestFail","Output":"--- FAIL: TestFail (0.00s)\n"}
{"Action":"fail","Package":"example.com/b","Test":"TestFail","Elapsed":0}
{"Action":"output","Package":"example.com/b","Output":"FAIL\texample.com/b\t0.1s\n"}
{"Action":"fail","Package":"example.com/b","Elapsed":0.1}
{"Action":"start","Package":"example.com/c"}
{"Action":"output","Package":"example.com/c","Output":"?   \texample.com/c\t[no test files]\n"}
{"Action":"skip","Package":"example.com/c","Elapsed":0}
`

// withoutFailure is stream less its failing test and package.
func withoutFailure() string {
	var keep []string
	for _, line := range strings.SplitAfter(stream, "\n") {
		if !strings.Contains(line, `"Package":"example.com/b","Test":"TestFail"`) &&
			!strings.Contains(line, `"Action":"fail"`) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

func TestSummarize(t *testing.T) {
	cases := []struct {
		name, in string
		ci       bool
		wantOK   bool
		want     []string // lines in this order
		notWant  []string
	}{{
		name:   "a failure fails",
		in:     stream,
		wantOK: false,
		want: []string{
			"ok   example.com/a 0.1s",
			"--- FAIL: TestFail (example.com/b)",
			"    fail_test.go:5: got 1, want 2",
			"FAIL example.com/b 0.1s",
			"--- SKIP: TestRegistry (example.com/a): needs tool docker-registry: docker-registry is not installed",
			"--- SKIP: TestSlow (example.com/b): slow: not in -short mode",
			"tests: 1 passed, 1 failed, 2 skipped",
		},
		notWant: []string{"example.com/c", "FAIL: CI is set"},
	}, {
		name:    "a missing tool is a skip off CI",
		in:      withoutFailure(),
		wantOK:  true,
		want:    []string{"--- SKIP: TestRegistry (example.com/a): needs tool docker-registry:", "tests: 1 passed, 0 failed, 2 skipped"},
		notWant: []string{"FAIL"},
	}, {
		name:   "a missing tool fails on CI",
		in:     withoutFailure(),
		ci:     true,
		wantOK: false,
		want: []string{
			"--- SKIP: TestRegistry (example.com/a): needs tool docker-registry:",
			`FAIL: CI is set and 1 skipped tests say "needs tool": install the tools they name (.ci/run)`,
			"tests: 1 passed, 0 failed, 2 skipped",
		},
	}, {
		name:   "other skips pass on CI",
		in:     strings.ReplaceAll(withoutFailure(), "needs tool docker-registry", "registry down"),
		ci:     true,
		wantOK: true,
		want:   []string{"--- SKIP: TestRegistry (example.com/a): registry down:", "tests: 1 passed, 0 failed, 2 skipped"},
	}, {
		name:   "lines that are not JSON are passed through",
		in:     "# example.com/d\nd.go:3:1: syntax error\n",
		wantOK: true,
		want:   []string{"# example.com/d", "d.go:3:1: syntax error", "tests: 0 passed, 0 failed, 0 skipped"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			ok := summarize(strings.NewReader(tc.in), &out, tc.ci)
			got := out.String()
			if ok != tc.wantOK {
				t.Errorf("ok = %v, want %v; output:\n%s", ok, tc.wantOK, got)
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (or has it out of order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("output has %q:\n%s", w, got)
				}
			}
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "tests: ") {
				t.Errorf("closing line %q", last)
			}
		})
	}
}
