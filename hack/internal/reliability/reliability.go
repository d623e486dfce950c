// Package reliability holds the results of the fault-injection suite (hack/chaos): one row per
// fault and controller, kept in docs/reliability.json, and the table docs/reliability.md shows
// of them, written between its markers.
package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Result is what one fault did to one controller.
type Result struct {
	// Fault is what was injected, e.g. "SIGKILL mid-apply (300 objects)".
	Fault string `json:"fault"`
	// Controller is the controller under the fault.
	Controller string `json:"controller"`
	// Outcome is "recovered", or "failed: <why>".
	Outcome string `json:"outcome"`
	// RecoverySeconds is the time from the end of the fault (the restart, the server back) to
	// the object converged again.
	RecoverySeconds float64 `json:"recoverySeconds"`
	// DataLost is "none", or what was lost.
	DataLost string `json:"dataLost"`
	// Checked says what the test asserted beyond convergence.
	Checked string `json:"checked"`
	// Test is the Go test that measured it.
	Test string `json:"test"`
}

// Run is one run of the suite.
type Run struct {
	// Date is the day of the run (UTC, 2006-01-02).
	Date string `json:"date"`
	// Commit is the short hash of HEAD; Dirty says whether files other than the results had
	// uncommitted changes.
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"`
	// Machine describes where it ran (CPUs, Kubernetes version).
	Machine string `json:"machine"`
	// DurationSeconds is the whole suite's wall time.
	DurationSeconds float64  `json:"durationSeconds"`
	Results         []Result `json:"results"`
}

// Green tells whether the result is a recovery without loss.
func (r Result) Green() bool { return r.Outcome == "recovered" && r.DataLost == "none" }

// Load reads a run from file.
func Load(file string) (*Run, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var run Run
	if err := json.Unmarshal(data, &run); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &run, nil
}

// Save writes the run to file, its results in the order of the table.
func (run *Run) Save(file string) error {
	run.sort()
	data, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(data, '\n'), 0o644)
}

func (run *Run) sort() {
	sort.SliceStable(run.Results, func(i, j int) bool {
		a, b := run.Results[i], run.Results[j]
		if a.Test != b.Test {
			return a.Test < b.Test
		}
		return a.Fault+a.Controller < b.Fault+b.Controller
	})
}

// Markdown is the table of the run, with a line saying when and where it ran.
func (run *Run) Markdown() string {
	run.sort()
	var b strings.Builder
	green := 0
	for _, r := range run.Results {
		if r.Green() {
			green++
		}
	}
	commit := run.Commit
	if run.Dirty {
		commit += " (with uncommitted changes)"
	}
	fmt.Fprintf(&b, "Run of %s at commit %s on %s: %d faults, %d recovered with nothing lost, suite %.0f s.\n\n",
		run.Date, commit, run.Machine, len(run.Results), green, run.DurationSeconds)
	b.WriteString("| fault | controller | outcome | recovered in | data lost | checked | test |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range run.Results {
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f s | %s | %s | `%s` |\n",
			cell(r.Fault), cell(r.Controller), cell(r.Outcome), r.RecoverySeconds, cell(r.DataLost), cell(r.Checked), r.Test)
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

const (
	beginMarker = "<!-- BEGIN GENERATED: reliability -->"
	endMarker   = "<!-- END GENERATED -->"
)

// WriteTable puts the run's table into doc between its markers.
func WriteTable(doc string, run *Run) error {
	old, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	begin := bytes.Index(old, []byte(beginMarker))
	end := bytes.Index(old, []byte(endMarker))
	if begin < 0 || end < begin {
		return fmt.Errorf("%s: no %q … %q block to write the table into", doc, beginMarker, endMarker)
	}
	var out bytes.Buffer
	out.Write(old[:begin+len(beginMarker)])
	out.WriteString("\n")
	out.WriteString(run.Markdown())
	out.Write(old[end:])
	if bytes.Equal(out.Bytes(), old) {
		return nil
	}
	return os.WriteFile(doc, out.Bytes(), 0o644)
}
