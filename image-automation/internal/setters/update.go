package setters

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// UpdateBytes rewrites the marked values of one file's content and returns the new content, the
// changes (File empty) and the markers whose policy refs lacks.
//
// Content without markers, or whose markers already hold the right values, comes back as the
// same slice with no changes. The error wraps ErrNotYAML when the parser rejects the content
// (then nothing else is returned but the input), or is Problems when some markers were left
// alone; in that case out, changes and missing still describe the markers that were handled.
func UpdateBytes(content []byte, refs map[string]Ref) (out []byte, changes []Change, missing []Missing, err error) {
	p, err := plan(content, refs)
	if err != nil {
		return content, nil, nil, err
	}
	edits, missing, problems := p.edits, p.missing, p.problems
	out = content
	if len(edits) > 0 {
		out = splice(content, edits)
		if err := verify(p.docs, out, edits); err != nil {
			// A bug of ours, not of the file: refuse to hand back bytes that would corrupt it.
			failed := Problem{Reason: "rewritten content failed verification: " + err.Error()}
			return content, nil, missing, append(Problems{failed}, problems...)
		}
		changes = make([]Change, len(edits))
		for i, e := range edits {
			changes[i] = e.change
		}
	}
	if len(problems) > 0 {
		return out, changes, missing, problems
	}
	return out, changes, missing, nil
}

// edit replaces content[start:end] with text.
type edit struct {
	start, end int
	text       string
	node       *yaml.Node // the scalar in the parsed input
	change     Change
}

// plan parses content and decides every edit without touching the bytes.
func plan(content []byte, refs map[string]Ref) (*planner, error) {
	p := &planner{refs: refs, consumed: map[markerAt]bool{}}
	if !bytes.Contains(content, []byte(markerKey)) {
		return p, nil
	}
	docs, err := decodeAll(content)
	if err != nil {
		return nil, err
	}
	p.src, p.docs = newSource(content), docs
	for _, doc := range docs {
		p.obj = objectOf(doc)
		p.walk(doc, false)
	}
	p.reportLeftovers()
	slices.SortFunc(p.edits, func(a, b edit) int { return a.start - b.start })
	slices.SortStableFunc(p.problems, func(a, b Problem) int { return a.Line - b.Line })
	return p, nil
}

// decodeAll parses every document of a stream, keeping positions relative to the whole stream.
// (kio.ByteReader is not used: it splits documents on "---" text and drops CR, so the positions
// it reports are relative to each piece.)
func decodeAll(content []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var docs []*yaml.Node
	for {
		doc := &yaml.Node{}
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotYAML, err)
		}
		docs = append(docs, doc)
	}
}

// objectOf reads apiVersion, kind and metadata.namespace/name from a document.
func objectOf(doc *yaml.Node) ObjectRef {
	var o ObjectRef
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return o
	}
	root := doc.Content[0]
	o.APIVersion = scalarField(root, "apiVersion")
	o.Kind = scalarField(root, "kind")
	if md := field(root, "metadata"); md != nil && md.Kind == yaml.MappingNode {
		o.Namespace = scalarField(md, "namespace")
		o.Name = scalarField(md, "name")
	}
	return o
}

func field(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalarField(m *yaml.Node, key string) string {
	if v := field(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

type planner struct {
	src      *source
	docs     []*yaml.Node
	refs     map[string]Ref
	obj      ObjectRef
	edits    []edit
	missing  []Missing
	problems Problems
	// consumed holds the markers read from the source next to a value. A marker that the parser
	// attached to some other node and that is not in here sits where no value can take it.
	consumed map[markerAt]bool
	leftover []leftover
}

// markerAt identifies a marker comment by its text and line.
type markerAt struct {
	m    marker
	line int
}

// leftover is a node whose line comment is a marker, and why that marker cannot apply to it.
type leftover struct {
	m      marker
	line   int
	reason string
}

func (p *planner) walk(n *yaml.Node, flow bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			p.value(c, false)
		}
	case yaml.MappingNode:
		flow = flow || n.Style&yaml.FlowStyle != 0
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if m, ok := parseMarker(k.LineComment); ok {
				reason := reasonNotScalar
				if v.Kind == yaml.ScalarNode {
					reason = reasonNotOnLine
				}
				p.leftover = append(p.leftover, leftover{m, k.Line, reason})
			}
			p.value(v, flow)
		}
	case yaml.SequenceNode:
		flow = flow || n.Style&yaml.FlowStyle != 0
		for _, c := range n.Content {
			p.value(c, flow)
		}
	}
}

// value handles a node in value position: a document root, a mapping value or a sequence item.
func (p *planner) value(n *yaml.Node, flow bool) {
	lc, lcOK := parseMarker(n.LineComment)
	switch n.Kind {
	case yaml.ScalarNode:
		p.scalar(n, flow, lc, lcOK)
		return
	case yaml.AliasNode:
		if lcOK {
			p.leftover = append(p.leftover, leftover{lc, n.Line, reasonAlias})
		}
		return
	}
	if lcOK {
		p.leftover = append(p.leftover, leftover{lc, n.Line, reasonNotScalar})
	}
	p.walk(n, flow)
}

func (p *planner) scalar(n *yaml.Node, flow bool, lc marker, lcOK bool) {
	// Cheap filter first: most scalars of a file with markers are not marked.
	if !lcOK && !p.src.hasMarker(n.Line) {
		return
	}
	start, end, reason := p.src.span(n, flow)
	if reason != "" {
		if lcOK {
			p.consumed[markerAt{lc, n.Line}] = true
			p.problems = append(p.problems, Problem{Line: n.Line, Policy: lc.policy, Reason: reason})
		}
		return
	}
	var m marker
	comment, ok := p.src.trailingComment(n.Line, end)
	if ok {
		m, ok = parseMarker(comment)
	}
	if lcOK && (!ok || m != lc) {
		// The parser saw a marker this value does not carry on its own line.
		p.leftover = append(p.leftover, leftover{lc, n.Line, reasonNotOnLine})
	}
	if !ok {
		return
	}
	p.consumed[markerAt{m, n.Line}] = true
	ref, ok := p.refs[m.policy]
	if !ok {
		p.missing = append(p.missing, Missing{Line: n.Line, Policy: m.policy})
		return
	}
	val, why := m.value(ref)
	if why == "" && val == n.Value {
		return
	}
	var text string
	if why == "" {
		text, why = render(val, n, flow)
	}
	if why != "" {
		p.problems = append(p.problems, Problem{Line: n.Line, Policy: m.policy, Reason: why})
		return
	}
	if start == end {
		// An empty value: keep the new text apart from "key:", "-" or a tag before it and from
		// the comment after it.
		if start > 0 && !isBlank(p.src.b[start-1]) {
			text = " " + text
		}
		if start < len(p.src.b) && p.src.b[start] == '#' {
			text += " "
		}
	}
	p.edits = append(p.edits, edit{
		start: start, end: end, text: text, node: n,
		change: Change{Line: n.Line, Object: p.obj, Policy: m.policy, Field: m.field, Old: n.Value, New: val},
	})
}

func (p *planner) reportLeftovers() {
	for _, l := range p.leftover {
		at := markerAt{l.m, l.line}
		if p.consumed[at] {
			continue
		}
		p.consumed[at] = true
		p.problems = append(p.problems, Problem{Line: l.line, Policy: l.m.policy, Reason: l.reason})
	}
}

// splice applies edits, sorted by start and not overlapping, to a copy of content.
func splice(content []byte, edits []edit) []byte {
	grow := 0
	for _, e := range edits {
		grow += len(e.text) - (e.end - e.start)
	}
	out := make([]byte, 0, len(content)+max(grow, 0))
	last := 0
	for _, e := range edits {
		out = append(out, content[last:e.start]...)
		out = append(out, e.text...)
		last = e.end
	}
	return append(out, content[last:]...)
}

// verify parses the output and checks it holds the same documents as the input, node for node,
// with only the edited scalars' values changed and every line where it was. Comments are not
// compared: yaml.v3 attaches them loosely (and drops some), while the splice leaves every byte
// outside the edited values as it was anyway.
func verify(before []*yaml.Node, out []byte, edits []edit) error {
	after, err := decodeAll(out)
	if err != nil {
		return err
	}
	if len(before) != len(after) {
		return fmt.Errorf("%d documents became %d", len(before), len(after))
	}
	want := make(map[*yaml.Node]string, len(edits))
	for _, e := range edits {
		want[e.node] = e.change.New
	}
	for i := range before {
		if err := sameNode(before[i], after[i], want); err != nil {
			return err
		}
	}
	return nil
}

func sameNode(a, b *yaml.Node, want map[*yaml.Node]string) error {
	if a.Kind != b.Kind || a.Line != b.Line || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) {
		return fmt.Errorf("line %d: node changed shape", a.Line)
	}
	if v, ok := want[a]; ok {
		if b.Value != v || b.ShortTag() != "!!str" && b.ShortTag() != a.ShortTag() {
			return fmt.Errorf("line %d: value reads back as %s %q, not %q", a.Line, b.ShortTag(), b.Value, v)
		}
	} else if a.Value != b.Value || a.Tag != b.Tag || a.Style != b.Style {
		return fmt.Errorf("line %d: value %q changed to %q", a.Line, a.Value, b.Value)
	}
	for i := range a.Content {
		if err := sameNode(a.Content[i], b.Content[i], want); err != nil {
			return err
		}
	}
	return nil
}

// render writes value in the quoting style of the scalar it replaces, or double-quoted when
// that style cannot carry it.
func render(value string, old *yaml.Node, flow bool) (string, string) {
	if !utf8.ValidString(value) {
		return "", "new value is not valid UTF-8"
	}
	switch {
	case old.Style&yaml.DoubleQuotedStyle != 0:
	case old.Style&yaml.SingleQuotedStyle != 0:
		if singleQuotable(value) {
			return "'" + strings.ReplaceAll(value, "'", "''") + "'", ""
		}
	default:
		if plainSafe(value, old, flow) {
			return value, ""
		}
	}
	return doubleQuote(value), ""
}
