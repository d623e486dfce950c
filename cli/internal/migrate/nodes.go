package migrate

import (
	"strconv"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The helpers below build the YAML of the objects an Argo CD migration writes, node by node, so
// that the comments of the fields they come from can go with the values.

// mapping is an empty mapping node.
func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

// sequence is an empty sequence node.
func sequence() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"} }

// str is a string scalar.
func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// boolean is a boolean scalar.
func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// integer is an integer scalar.
func integer(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

// from is a string scalar carrying the comments of the source node it comes from.
func from(src *yaml.Node, s string) *yaml.Node {
	n := str(s)
	if src != nil {
		n.HeadComment, n.LineComment, n.FootComment = src.HeadComment, src.LineComment, src.FootComment
	}
	return n
}

// set puts key: v in the mapping m, replacing the value of an existing key.
func set(m *yaml.Node, key string, v *yaml.Node) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return v
		}
	}
	m.Content = append(m.Content, str(key), v)
	return v
}

// child returns the mapping at key in m, adding an empty one when there is none.
func child(m *yaml.Node, key string) *yaml.Node {
	if c := field(m, key); c != nil && c.Kind == yaml.MappingNode {
		return c
	}
	return set(m, key, mapping())
}

// pairs calls fn for each key and value of a mapping node, in order.
func pairs(n *yaml.Node, fn func(k, v *yaml.Node)) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		fn(n.Content[i], n.Content[i+1])
	}
}

// text is the value of a scalar node, "" for anything else.
func text(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// truthy says whether a scalar node is the boolean true.
func truthy(n *yaml.Node) bool {
	b, err := strconv.ParseBool(text(n))
	return err == nil && b
}

// deepCopy copies a node tree, comments included, dropping aliases' sharing.
func deepCopy(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = deepCopy(k)
	}
	if n.Alias != nil {
		c.Alias = deepCopy(n.Alias)
	}
	return &c
}

// merge merges the mapping src into the mapping dst, src winning; maps merge key by key, and
// everything else is replaced, as Helm merges values.
func merge(dst, src *yaml.Node) *yaml.Node {
	if dst == nil || dst.Kind != yaml.MappingNode || src == nil || src.Kind != yaml.MappingNode {
		return src
	}
	pairs(src, func(k, v *yaml.Node) {
		if old := field(dst, k.Value); old != nil {
			set(dst, k.Value, merge(old, v))
			return
		}
		dst.Content = append(dst.Content, k, v)
	})
	return dst
}

// items are the entries of a sequence node; none for anything else.
func items(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}
