package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Record is one measured run of a scenario: one line of docs/benchmarks/<scenario>.jsonl. The
// lines are appended and committed, so that a figure can always be traced to the commit, the
// machine and the sizes it was measured with.
type Record struct {
	Date       string         `json:"date"`   // UTC, RFC 3339, when the scenario started
	Commit     string         `json:"commit"` // short hash of HEAD
	Dirty      bool           `json:"dirty"`  // uncommitted changes outside docs/benchmarks
	Machine    Machine        `json:"machine"`
	Load1      float64        `json:"load1"`      // 1-minute load average as the scenario started
	Go         string         `json:"go"`         // toolchain of the benchmark and the controllers
	Kubernetes string         `json:"kubernetes"` // K8S_VERSION of the control plane
	Scenario   string         `json:"scenario"`
	Params     map[string]any `json:"params"` // the size knobs (flags) of the scenario
	Metrics    []Metric       `json:"metrics"`
}

// Machine is where a run was measured.
type Machine struct {
	CPU       string `json:"cpu"`        // model name from /proc/cpuinfo
	Cores     int    `json:"cores"`      // logical CPUs
	MemoryMiB int    `json:"memory_mib"` // MemTotal from /proc/meminfo
}

// Better is the direction in which a metric improves.
type Better string

const (
	Lower  Better = "lower"
	Higher Better = "higher"
)

// Metric is one figure of a run.
type Metric struct {
	Name   string  `json:"name"`  // stable key, compared across runs
	Label  string  `json:"label"` // the row of the printed table
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`   // s, ms, MiB, CPU s, CPU ms/reconcile, requests/object, count, …
	Better Better  `json:"better"` // lower or higher
}

// figures collects a scenario's metrics in the order they are printed.
type figures []Metric

// add appends a metric; the value is rounded to digits decimals, so that the files hold what
// was measured and not the float noise of a division.
func (f *figures) add(name, label string, value float64, digits int, unit string, better Better) {
	p := math.Pow(10, float64(digits))
	*f = append(*f, Metric{Name: name, Label: label, Value: math.Round(value*p) / p, Unit: unit, Better: better})
}

// writeTable prints the metrics as a Markdown table.
func writeTable(w io.Writer, title string, ms []Metric) {
	fmt.Fprintf(w, "\n### %s\n\n| figure | value |\n|---|---|\n", title)
	for _, m := range ms {
		unit := " " + m.Unit
		if m.Unit == "count" {
			unit = ""
		}
		fmt.Fprintf(w, "| %s | %s%s |\n", m.Label, strconv.FormatFloat(m.Value, 'f', -1, 64), unit)
	}
}

// appendRecord appends r as one line to the file at path, creating it and its folder.
func appendRecord(path string, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readRecords reads JSON lines; blank lines are skipped, a line that is not a record is an error
// naming its line number.
func readRecords(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(text, &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// readRecordFile reads the records of path; a missing file has none.
func readRecordFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := readRecords(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return recs, nil
}

// previous returns the last record of the scenario measured with the same sizes as r, and
// whether there is one. Figures of other sizes do not compare.
func previous(recs []Record, r Record) (Record, bool) {
	want := paramsKey(r.Params)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Scenario == r.Scenario && paramsKey(recs[i].Params) == want {
			return recs[i], true
		}
	}
	return Record{}, false
}

// paramsKey is a canonical form of params: JSON sorts map keys, and an int written as 200
// reads back as the float64 200, which encodes the same.
func paramsKey(p map[string]any) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// Change is one metric of a run against the same metric of an earlier run.
type Change struct {
	Metric     // the new run's
	Old        float64
	Percent    float64 // (new-old)/old×100; ±Inf when old is 0 and new is not
	Regression bool    // worse than the threshold, in the metric's bad direction
}

// compare matches the metrics of cur with those of old by name (and unit); a metric that old
// does not have is left out. A change counts as a regression when it goes the bad way by more
// than threshold percent; from 0, any change the bad way does (fetches in a no-op round, say).
func compare(old, cur Record, threshold float64) []Change {
	byName := map[string]Metric{}
	for _, m := range old.Metrics {
		byName[m.Name] = m
	}
	var out []Change
	for _, m := range cur.Metrics {
		o, ok := byName[m.Name]
		if !ok || o.Unit != m.Unit {
			continue
		}
		c := Change{Metric: m, Old: o.Value, Percent: percent(o.Value, m.Value)}
		worse := (m.Better == Lower && m.Value > o.Value) || (m.Better == Higher && m.Value < o.Value)
		c.Regression = worse && math.Abs(c.Percent) > threshold
		out = append(out, c)
	}
	return out
}

func percent(old, cur float64) float64 {
	switch {
	case old == cur:
		return 0
	case old == 0:
		return math.Inf(int(math.Copysign(1, cur)))
	}
	return (cur - old) / math.Abs(old) * 100
}

// writeComparison prints the changes as a Markdown table, regressions flagged.
func writeComparison(w io.Writer, old Record, changes []Change, threshold float64) {
	dirty := ""
	if old.Dirty {
		dirty = ", dirty"
	}
	fmt.Fprintf(w, "\nCompared with the run of %s at %s%s (load %.2f then, same sizes):\n\n", old.Date, old.Commit, dirty, old.Load1)
	fmt.Fprintf(w, "| figure | better | old | new | change | |\n|---|---|---|---|---|---|\n")
	regressions := 0
	for _, c := range changes {
		flag := ""
		if c.Regression {
			flag = "REGRESSION"
			regressions++
		}
		fmt.Fprintf(w, "| %s (%s) | %s | %s | %s | %s | %s |\n", c.Label, c.Unit, c.Better,
			strconv.FormatFloat(c.Old, 'f', -1, 64), strconv.FormatFloat(c.Value, 'f', -1, 64), formatPercent(c.Percent), flag)
	}
	fmt.Fprintf(w, "\n%d of %d figures worse by more than %g %%.\n", regressions, len(changes), threshold)
}

func formatPercent(p float64) string {
	switch {
	case math.IsInf(p, 1):
		return "+∞"
	case math.IsInf(p, -1):
		return "−∞"
	}
	return fmt.Sprintf("%+.1f %%", p)
}

// newRecord describes the run about to start: the time, the commit, the machine and the
// toolchain; the caller adds the metrics.
func newRecord(root, scenario string, params map[string]any) Record {
	r := Record{
		Date:       time.Now().UTC().Format(time.RFC3339),
		Go:         runtime.Version(),
		Kubernetes: os.Getenv("K8S_VERSION"),
		Scenario:   scenario,
		Params:     params,
		Machine:    Machine{Cores: runtime.NumCPU()},
	}
	if r.Kubernetes == "" {
		r.Kubernetes = "1.37.2" // the Makefile's default
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		r.Machine.CPU = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		r.Machine.MemoryMiB = memTotalMiB(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			r.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		r.Commit = strings.TrimSpace(string(out))
	}
	// The result files themselves change with every run: they do not make the code dirty.
	if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", ".", ":(exclude)docs/benchmarks").Output(); err == nil {
		r.Dirty = len(bytes.TrimSpace(out)) > 0
	}
	return r
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memTotalMiB is MemTotal of /proc/meminfo in MiB.
func memTotalMiB(meminfo string) int {
	for _, line := range strings.Split(meminfo, "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb / 1024
		}
	}
	return 0
}

// coldRequests adds the controller's API requests per object while n objects came to Ready;
// informers' lists and watches started by the first objects are in it.
func (f *figures) coldRequests(r requests, n int) {
	f.add("cold_requests_per_object", "controller API requests per object, cold start", r.all/float64(n), 2, "requests/object", Lower)
	f.add("cold_writes_per_object", "of which writes (POST, PUT, PATCH, DELETE)", r.writes/float64(n), 2, "requests/object", Lower)
}

// apiServerRequests adds the requests the API server served per Kustomization of n during a
// phase, from every client: the controllers, kube-controller-manager (a Deployment's ReplicaSet
// and status) and the bench's own (its create of each Kustomization, its watch).
func (f *figures) apiServerRequests(name, phase string, r requests, n int) {
	f.add(name+"_apiserver_requests", "kube-apiserver requests per Kustomization, "+phase+" (all clients)", r.all/float64(n), 2, "requests", Lower)
	f.add(name+"_apiserver_writes", "of which writes (POST, PUT, PATCH, APPLY, DELETE)", r.writes/float64(n), 2, "requests", Lower)
}

// noopRequests adds the controller's API requests per reconcile of a no-op round of n.
func (f *figures) noopRequests(r requests, n int) {
	f.add("noop_requests_per_reconcile", "controller API requests per no-op reconcile", r.all/float64(n), 2, "requests/reconcile", Lower)
	f.add("noop_writes_per_reconcile", "of which writes (POST, PUT, PATCH, DELETE)", r.writes/float64(n), 2, "requests/reconcile", Lower)
}
