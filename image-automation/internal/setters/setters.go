// Package setters owns the "setters" update strategy of image automation: it finds YAML values
// marked with a `# {"$imagepolicy": "<namespace>:<name>[:tag|:name|:digest]"}` line comment and
// rewrites them to the latest image of that policy.
//
// The YAML parser is used only to find the marked scalars; new values are spliced into the
// original bytes, so everything else in a file (comments, indentation, key order, line endings)
// stays as the author wrote it.
package setters

import (
	"errors"
	"fmt"
	"strings"
)

// Ref is the latest image a policy selected.
type Ref struct {
	Name   string // e.g. "ghcr.io/acme/app"
	Tag    string // e.g. "1.2.0"
	Digest string // "sha256:…", or "" when the policy did not resolve one
}

// Change is one value that was rewritten.
type Change struct {
	File   string    // slash path relative to the root; empty from UpdateBytes
	Line   int       // 1-based line of the value
	Object ObjectRef // the document holding the value
	Policy string    // "namespace:name"
	Field  string    // FieldFull, FieldTag, FieldName or FieldDigest
	Old    string
	New    string
}

// ObjectRef names the Kubernetes object of a document from its top-level fields; fields the
// document lacks are empty.
type ObjectRef struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
}

// Missing is a marker naming a policy that refs does not hold.
type Missing struct {
	File   string
	Line   int
	Policy string
}

// Skipped is a file, or one marker in it, that was left alone. Line is 0 when the whole file
// was skipped.
type Skipped struct {
	File   string
	Line   int
	Policy string
	Reason string
}

// Result is what Update did. All slices are in file, then line order.
type Result struct {
	Changes []Change
	Files   []string // files written
	Missing []Missing
	Skipped []Skipped
}

// ErrNotYAML is wrapped by the error UpdateBytes returns for content the YAML parser rejects.
var ErrNotYAML = errors.New("not YAML")

// Problem is a marker that was recognised but left alone.
type Problem struct {
	Line   int
	Policy string
	Reason string
}

// Problems is the error UpdateBytes returns when some markers were left alone. It does not
// void the other results: the markers that could be applied are in the output and changes.
type Problems []Problem

func (p Problems) Error() string {
	msgs := make([]string, len(p))
	for i, pr := range p {
		msgs[i] = fmt.Sprintf("line %d: %s: %s", pr.Line, pr.Policy, pr.Reason)
	}
	return strings.Join(msgs, "; ")
}
