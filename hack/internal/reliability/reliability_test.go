package reliability

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTableRoundTrip(t *testing.T) {
	dir := t.TempDir()
	run := &Run{Date: "2026-12-24", Commit: "abc1234", Machine: "2 CPUs", DurationSeconds: 321, Results: []Result{
		{Fault: "git 500", Controller: "source-controller", Outcome: "recovered", RecoverySeconds: 2.04, DataLost: "none", Checked: "a | b", Test: "TestB"},
		{Fault: "SIGKILL", Controller: "apply-controller", Outcome: "failed: 3 objects orphaned", RecoverySeconds: 7, DataLost: "none", Test: "TestA"},
	}}
	file := filepath.Join(dir, "r.json")
	if err := run.Save(file); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "r.md")
	if err := os.WriteFile(doc, []byte("# R\n\n"+beginMarker+"\nold\n"+endMarker+"\nafter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(doc, loaded); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(doc)
	for _, want := range []string{
		"Run of 2026-12-24 at commit abc1234 on 2 CPUs: 2 faults, 1 recovered with nothing lost, suite 321 s.",
		"| SIGKILL | apply-controller | failed: 3 objects orphaned | 7.0 s | none |  | `TestA` |\n| git 500 | source-controller | recovered | 2.0 s | none | a \\| b | `TestB` |",
		"\nafter\n",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the page lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "old") {
		t.Errorf("the old table stayed:\n%s", got)
	}
	if err := WriteTable(filepath.Join(dir, "r.json"), loaded); err == nil {
		t.Error("a page without markers was accepted")
	}
}
