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
