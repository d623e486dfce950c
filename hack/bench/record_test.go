package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func run(scenario string, params map[string]any, ms ...Metric) Record {
	return Record{Date: "2026-12-06T10:00:00Z", Commit: "c9d2a4f", Machine: Machine{CPU: "AMD EPYC 7B13", Cores: 2, MemoryMiB: 24105},
		Go: "go1.26.8", Kubernetes: "1.37.2", Scenario: scenario, Params: params, Metrics: ms}
}

func seconds(name string, v float64) Metric {
	return Metric{Name: name, Label: name, Value: v, Unit: "s", Better: Lower}
}

func TestAppendAndReadRecords(t *testing.T) {
	tests := []struct {
		name string
		runs []Record
	}{
		{"one run", []Record{run("git", map[string]any{"n": 200}, seconds("cold_ready", 2.1))}},
		{"runs appended in order", []Record{
			run("git", map[string]any{"n": 200}, seconds("cold_ready", 2.1)),
			run("git", map[string]any{"n": 20}, seconds("cold_ready", 0.4), Metric{Name: "delivered", Value: 10, Unit: "count", Better: Higher}),
		}},
		{"no metrics, no params", []Record{run("receiver", nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "docs", "benchmarks", "git.jsonl")
			for _, r := range tc.runs {
				if err := appendRecord(path, r); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if lines := strings.Count(string(b), "\n"); lines != len(tc.runs) {
				t.Errorf("%d lines, want one per run (%d):\n%s", lines, len(tc.runs), b)
			}
			got, err := readRecordFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Numbers in params read back as float64; the canonical key is what must survive.
			if len(got) != len(tc.runs) {
				t.Fatalf("read %d records, want %d", len(got), len(tc.runs))
			}
			for i := range got {
				if paramsKey(got[i].Params) != paramsKey(tc.runs[i].Params) {
					t.Errorf("record %d params %s, want %s", i, paramsKey(got[i].Params), paramsKey(tc.runs[i].Params))
				}
				got[i].Params, tc.runs[i].Params = nil, nil
			}
			if diff := cmp.Diff(tc.runs, got); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadRecords(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"empty", "", 0, ""},
		{"blank lines skipped", "\n{\"scenario\":\"git\"}\n\n  \n{\"scenario\":\"git\"}\n", 2, ""},
		{"no final newline", `{"scenario":"git"}`, 1, ""},
		{"a broken line names its number", "{\"scenario\":\"git\"}\n{\"scenario\":\n", 0, "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readRecords(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Errorf("%d records, want %d", len(got), tc.want)
			}
		})
	}
}

func TestReadRecordFileMissing(t *testing.T) {
	got, err := readRecordFile(filepath.Join(t.TempDir(), "none.jsonl"))
	if err != nil || got != nil {
		t.Errorf("got %v, %v; want no records and no error", got, err)
	}
}

func TestPrevious(t *testing.T) {
	// As read back from a file: numbers are float64.
	old200 := run("git", map[string]any{"n": float64(200)}, seconds("cold_ready", 2))
	old200.Commit = "aaaaaaa"
	old20 := run("git", map[string]any{"n": float64(20)}, seconds("cold_ready", 0.5))
	newer200 := run("git", map[string]any{"n": float64(200)}, seconds("cold_ready", 2.2))
	newer200.Commit = "bbbbbbb"
	oci := run("oci", map[string]any{"n": float64(200)}, seconds("cold_ready", 5))
	cur := run("git", map[string]any{"n": 200})
	tests := []struct {
		name       string
		recs       []Record
		wantCommit string
		wantOK     bool
	}{
		{"none", nil, "", false},
		{"the last of the same sizes", []Record{old200, newer200, old20}, "bbbbbbb", true},
		{"other sizes only", []Record{old20}, "", false},
		{"another scenario of the same sizes", []Record{oci}, "", false},
		{"skips later runs of other sizes", []Record{old200, old20, oci}, "aaaaaaa", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := previous(tc.recs, cur)
			if ok != tc.wantOK || got.Commit != tc.wantCommit {
				t.Errorf("got %q, %v; want %q, %v", got.Commit, ok, tc.wantCommit, tc.wantOK)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	m := func(name string, v float64, unit string, better Better) Metric {
		return Metric{Name: name, Label: name, Value: v, Unit: unit, Better: better}
	}
	tests := []struct {
		name      string
		old, cur  Metric
		threshold float64
		want      *Change // nil: not compared
	}{
		{"lower is better, 20 % slower", m("t", 2, "s", Lower), m("t", 2.4, "s", Lower), 10,
			&Change{Metric: m("t", 2.4, "s", Lower), Old: 2, Percent: 20, Regression: true}},
		{"lower is better, 20 % faster", m("t", 2, "s", Lower), m("t", 1.6, "s", Lower), 10,
			&Change{Metric: m("t", 1.6, "s", Lower), Old: 2, Percent: -20}},
		{"lower is better, within the threshold", m("t", 2, "s", Lower), m("t", 2.1, "s", Lower), 10,
			&Change{Metric: m("t", 2.1, "s", Lower), Old: 2, Percent: 5}},
		{"exactly the threshold is not flagged", m("t", 100, "s", Lower), m("t", 110, "s", Lower), 10,
			&Change{Metric: m("t", 110, "s", Lower), Old: 100, Percent: 10}},
		{"higher is better, fewer delivered", m("d", 10000, "count", Higher), m("d", 8000, "count", Higher), 10,
			&Change{Metric: m("d", 8000, "count", Higher), Old: 10000, Percent: -20, Regression: true}},
		{"higher is better, more delivered", m("d", 1000, "count", Higher), m("d", 1500, "count", Higher), 10,
			&Change{Metric: m("d", 1500, "count", Higher), Old: 1000, Percent: 50}},
		{"from zero the bad way: always flagged", m("f", 0, "count", Lower), m("f", 1, "count", Lower), 10,
			&Change{Metric: m("f", 1, "count", Lower), Old: 0, Percent: math.Inf(1), Regression: true}},
		{"zero stays zero", m("f", 0, "count", Lower), m("f", 0, "count", Lower), 10,
			&Change{Metric: m("f", 0, "count", Lower), Old: 0, Percent: 0}},
		{"from zero the good way", m("d", 0, "count", Higher), m("d", 5, "count", Higher), 10,
			&Change{Metric: m("d", 5, "count", Higher), Old: 0, Percent: math.Inf(1)}},
		{"a tighter threshold", m("t", 2, "s", Lower), m("t", 2.1, "s", Lower), 1,
			&Change{Metric: m("t", 2.1, "s", Lower), Old: 2, Percent: 5, Regression: true}},
		{"another unit is not compared", m("t", 2, "s", Lower), m("t", 2000, "ms", Lower), 10, nil},
		{"a new metric is not compared", m("a", 2, "s", Lower), m("b", 2, "s", Lower), 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := compare(run("x", nil, tc.old), run("x", nil, tc.cur), tc.threshold)
			var want []Change
			if tc.want != nil {
				want = []Change{*tc.want}
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool {
				return a == b || math.Abs(a-b) < 1e-9
			})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompareKeepsOrderOfTheNewRun(t *testing.T) {
	old := run("git", nil, seconds("a", 1), seconds("b", 1), seconds("gone", 1))
	cur := run("git", nil, seconds("b", 1), seconds("new", 1), seconds("a", 1))
	var names []string
	for _, c := range compare(old, cur, 10) {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"b", "a"}, names); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestWriteComparison(t *testing.T) {
	old := run("git", nil, seconds("cold_ready", 2), Metric{Name: "fetches", Label: "fetches", Value: 0, Unit: "count", Better: Lower})
	cur := run("git", nil, seconds("cold_ready", 1.5), Metric{Name: "fetches", Label: "fetches", Value: 3, Unit: "count", Better: Lower})
	var b bytes.Buffer
	writeComparison(&b, old, compare(old, cur, 10), 10)
	for _, want := range []string{
		"| cold_ready (s) | lower | 2 | 1.5 | -25.0 % |  |",
		"| fetches (count) | lower | 0 | 3 | +∞ | REGRESSION |",
		"1 of 2 figures worse by more than 10 %.",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
}

func TestFiguresRound(t *testing.T) {
	var f figures
	f.add("cpu", "CPU per reconcile", 2.0/3, 3, "CPU ms/reconcile", Lower)
	f.add("rss", "peak RSS", 81.96, 0, "MiB", Lower)
	if f[0].Value != 0.667 || f[1].Value != 82 {
		t.Errorf("rounded to %v and %v, want 0.667 and 82", f[0].Value, f[1].Value)
	}
}

func TestParseRequests(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    requests
		wantErr bool
	}{
		{"none", "# HELP go_goroutines\ngo_goroutines 12\n", requests{}, false},
		{"summed over labels, writes apart", `# HELP rest_client_requests_total Number of HTTP requests.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 410
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 200
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 3
rest_client_requests_total{code="409",host="127.0.0.1:6443",method="PUT"} 1
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="DELETE"} 2
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="WATCH"} 4
`, requests{all: 620, writes: 206}, false},
		{"another metric of the same prefix", "rest_client_requests_total_other{method=\"GET\"} 5\nrest_client_requests_total{method=\"GET\"} 1\n", requests{all: 1}, false},
		{"without labels, with a timestamp", "rest_client_requests_total 7 1700000000000\n", requests{all: 7}, false},
		{"a value in exponent form", "rest_client_requests_total{method=\"PATCH\"} 1.5e+03\n", requests{all: 1500, writes: 1500}, false},
		{"no value", "rest_client_requests_total{method=\"GET\"}\n", requests{}, true},
		{"not a number", "rest_client_requests_total{method=\"GET\"} many\n", requests{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRequests(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want one: %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseAPIServerRequests(t *testing.T) {
	in := `# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",resource="deployments",verb="APPLY"} 998
apiserver_request_total{code="200",component="apiserver",resource="kustomizations",subresource="status",verb="PATCH"} 1862
apiserver_request_total{code="409",component="apiserver",resource="deployments",subresource="status",verb="PUT"} 3
apiserver_request_total{code="200",component="apiserver",resource="kustomizations",verb="LIST"} 2
apiserver_request_total{code="200",component="apiserver",resource="configmaps",verb="WATCH"} 1
apiserver_request_total_other{verb="APPLY"} 9
`
	got, err := parseCounter(strings.NewReader(in), "apiserver_request_total", "verb")
	if err != nil {
		t.Fatal(err)
	}
	if want := (requests{all: 2866, writes: 2863}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestMachine(t *testing.T) {
	cpuinfo := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got := cpuModel(cpuinfo); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel("processor\t: 0\n"); got != "" {
		t.Errorf("cpuModel without a model name = %q", got)
	}
	if got := memTotalMiB("MemTotal:       24683520 kB\nMemFree:        20703232 kB\n"); got != 24105 {
		t.Errorf("memTotalMiB = %d, want 24105", got)
	}
}
