// Command reliability renders the table of docs/reliability.md from docs/reliability.json, the
// results of the last recorded run of the fault-injection suite (`make chaos UPDATE=1` records
// one). `make generate` runs it; it reads only local files.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/plumb-dev/plumb/hack/internal/reliability"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		return err
	}
	results, err := reliability.Load(filepath.Join(root, "docs", "reliability.json"))
	if err != nil {
		return err
	}
	return reliability.WriteTable(filepath.Join(root, "docs", "reliability.md"), results)
}
