// Command compat measures how much of Flux's API Plumb offers: it reads Flux's published CRDs
// (vendored in hack/compat/flux-crds) and Plumb's own (<controller>/config/crd/bases), matches
// every spec field path of each Flux kind with the Plumb kind of the same name, and writes the
// coverage table, with a reason for each uncovered field from reasons.yaml, into
// docs/compat/flux.md between its markers. `make generate` runs it; it reads only local files.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

const (
	beginMarker = "<!-- BEGIN GENERATED: fields -->"
	endMarker   = "<!-- END GENERATED -->"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		return err
	}
	flux, err := readKinds(filepath.Join(root, "hack", "compat", "flux-crds", "*.yaml"))
	if err != nil {
		return err
	}
	plumb, err := readKinds(filepath.Join(root, "*", "config", "crd", "bases", "*.yaml"))
	if err != nil {
		return err
	}
	reasons, err := readReasons(filepath.Join(root, "hack", "compat", "reasons.yaml"))
	if err != nil {
		return err
	}
	rep, err := compare(flux, plumb, reasons)
	if err != nil {
		return err
	}
	fmt.Printf("compat: Plumb covers %d of the %d spec fields of Flux's %d kinds (%s)\n",
		rep.Covered, rep.Total, len(rep.Kinds), percent(rep.Covered, rep.Total))

	doc := filepath.Join(root, "docs", "compat", "flux.md")
	old, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	updated, err := replaceBetween(old, rep.Markdown())
	if err != nil {
		return fmt.Errorf("%s: %w", doc, err)
	}
	return os.WriteFile(doc, updated, 0o644)
}

// readReasons reads reasons.yaml: kind → field path → why Plumb has no such field.
func readReasons(path string) (map[string]map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	reasons := map[string]map[string]string{}
	if err := yaml.UnmarshalStrict(data, &reasons); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return reasons, nil
}

// replaceBetween puts body between the markers of doc, keeping the markers.
func replaceBetween(doc []byte, body string) ([]byte, error) {
	begin := bytes.Index(doc, []byte(beginMarker))
	end := bytes.Index(doc, []byte(endMarker))
	if begin < 0 || end < begin {
		return nil, fmt.Errorf("no %q … %q block to write the table into", beginMarker, endMarker)
	}
	var out bytes.Buffer
	out.Write(doc[:begin+len(beginMarker)])
	out.WriteString("\n")
	out.WriteString(body)
	out.Write(doc[end:])
	return out.Bytes(), nil
}
