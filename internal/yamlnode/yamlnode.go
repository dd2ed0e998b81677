// Package yamlnode holds the small helpers that bucketd's two YAML
// formats (the policies file, policyfile; Envoy's rate limit
// configuration, rlsconfig) share when they walk yaml.Node trees to
// report problems by line and column.
package yamlnode

import "go.yaml.in/yaml/v4"

// Deref returns the node an alias (*name) stands for, or n itself. A walk
// that goes only as deep as its format ends even on an alias to its own
// ancestor.
func Deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// IsNull reports whether n is an empty value: "key:" with nothing after
// it, "~" or "null".
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// KindName names a node's kind as an error message says it: "mapping",
// "list", "alias", "document", or "value" for a scalar.
func KindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	}
	return "value"
}

// Entry is one key and value of a mapping, aliases resolved.
type Entry struct{ Key, Val *yaml.Node }

// Entries returns the entries of the mapping n, in order, aliases
// resolved. A key that is not a scalar is passed to notScalar, and a key
// given again to dup with the node of its first occurrence; both are left
// out. n must be a mapping.
func Entries(n *yaml.Node, notScalar func(k *yaml.Node), dup func(k, first *yaml.Node)) []Entry {
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	out := make([]Entry, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := Deref(n.Content[i]), Deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			notScalar(k)
			continue
		}
		if first, ok := seen[k.Value]; ok {
			dup(k, first)
			continue
		}
		seen[k.Value] = k
		out = append(out, Entry{k, v})
	}
	return out
}
