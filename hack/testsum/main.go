// Command testsum reads `go test -json` on stdin and prints what a person wants from a run: one
// line per package, the output of every failed test, and a closing count of tests.
//
//	go test -json ./... | go run ./hack/testsum
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	outputs := map[string]*strings.Builder{} // by package + test
	var passed, failed, skipped int
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // build errors and the like are not JSON
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
				printPackage(e, outputs[key])
			} else {
				switch e.Action {
				case "pass":
					passed++
				case "fail":
					failed++
					fmt.Printf("--- FAIL: %s (%s)\n%s", e.Test, e.Package, tail(outputs[key], 200))
				case "skip":
					skipped++
				}
			}
			delete(outputs, key)
		}
	}
	fmt.Printf("tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 {
		os.Exit(1)
	}
}

func printPackage(e event, out *strings.Builder) {
	switch e.Action {
	case "pass":
		fmt.Printf("ok   %s %.1fs\n", e.Package, e.Elapsed)
	case "skip":
		// no test files
	case "fail":
		fmt.Printf("FAIL %s %.1fs\n%s", e.Package, e.Elapsed, tail(out, 100))
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
