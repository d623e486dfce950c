// Command testsum reads `go test -json` on stdin and prints what a person wants from a run: one
// line per package, the output of every failed test, every skipped test with its reason, and a
// closing count of tests.
//
//	go test -json ./... | go run ./hack/testsum
//
// A test skipped because a program it needs is missing says "needs tool <name>:" (see
// shared/testing/testenv.NeedTool). Where the environment variable CI is set, such a skip fails
// the run: CI is where every tool must be installed, and a green run that tested less hides it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// needsTool starts the message of a test skipped for a missing program.
const needsTool = "needs tool "

func main() {
	if !summarize(os.Stdin, os.Stdout, os.Getenv("CI") != "") {
		os.Exit(1)
	}
}

// skip is one skipped test.
type skip struct {
	pkg, test, reason string
	// tool: the test said it needs a program that is missing.
	tool bool
}

// summarize reads the events of r, writes the summary to w and reports whether the run passed:
// no test failed, and, when ci, no test skipped for a missing tool.
func summarize(r io.Reader, w io.Writer, ci bool) bool {
	outputs := map[string]*strings.Builder{} // by package + test
	var passed, failed int
	var skips []skip
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(w, sc.Text()) // build errors and the like are not JSON
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			b.WriteString(e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				printPackage(w, e, outputs[key])
			} else {
				switch e.Action {
				case "pass":
					passed++
				case "fail":
					failed++
					fmt.Fprintf(w, "--- FAIL: %s (%s)\n%s", e.Test, e.Package, tail(outputs[key], 200))
				case "skip":
					said := skipReason(outputs[key])
					s := skip{pkg: e.Package, test: e.Test, reason: "no reason given"}
					if len(said) > 0 {
						s.reason = strings.Join(said, " ")
					}
					for _, line := range said {
						s.tool = s.tool || strings.HasPrefix(line, needsTool)
					}
					skips = append(skips, s)
				}
			}
			delete(outputs, key)
		}
	}
	missing := 0
	for _, s := range skips {
		fmt.Fprintf(w, "--- SKIP: %s (%s): %s\n", s.test, s.pkg, s.reason)
		if s.tool {
			missing++
		}
	}
	ok := failed == 0
	if ci && missing > 0 {
		ok = false
		fmt.Fprintf(w, "FAIL: CI is set and %d skipped tests say %q: install the tools they name (.ci/run)\n", missing, strings.TrimSpace(needsTool))
	}
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", passed, failed, len(skips))
	return ok
}

// location is the file:line prefix that the testing package puts before a logged message.
var location = regexp.MustCompile(`^\S+\.go:\d+: `)

// skipReason returns the lines a skipped test said, without the runner's own lines (=== RUN,
// --- SKIP), indentation and file:line prefixes.
func skipReason(out *strings.Builder) []string {
	if out == nil {
		return nil
	}
	var said []string
	for _, line := range strings.Split(out.String(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "=== ") || strings.HasPrefix(line, "--- ") {
			continue
		}
		said = append(said, location.ReplaceAllString(line, ""))
	}
	return said
}

func printPackage(w io.Writer, e event, out *strings.Builder) {
	switch e.Action {
	case "pass":
		fmt.Fprintf(w, "ok   %s %.1fs\n", e.Package, e.Elapsed)
	case "skip":
		// no test files
	case "fail":
		fmt.Fprintf(w, "FAIL %s %.1fs\n%s", e.Package, e.Elapsed, tail(out, 100))
	}
}

// tail returns the last n lines of b.
func tail(b *strings.Builder, n int) string {
	if b == nil {
		return ""
	}
	lines := strings.SplitAfter(b.String(), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines cut]\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}
