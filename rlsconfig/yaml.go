package rlsconfig

import (
	"strings"

	"github.com/bucketd/bucketd/internal/yamlnode"

	yaml "go.yaml.in/yaml/v4"
)

// The YAML library is go.yaml.in/yaml/v4, as for the policies file
// (policyfile/yaml.go says why): its nodes carry the line and column of
// every value, and a syntax error is a *yaml.LoadError with its place.

// unknown reports a key the format does not have.
func (p *parser) unknown(k *yaml.Node, field string) {
	f := k.Value
	if field != "" {
		f = field + "." + k.Value
	}
	p.add(k, f, "config error, unknown key '%s'", k.Value)
}

// str returns n's value: any scalar is text, as envoyproxy/ratelimit's YAML
// library reads a number into a string field. null is "".
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.add(n, field, "want a value, not a %s", kindName(n.Kind))
		return "", false
	}
	return n.Value, true
}

// boolean returns n as a YAML boolean; null is false.
func (p *parser) boolean(n *yaml.Node, field string) bool {
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.add(n, field, "want true or false, not %q", n.Value)
		return false
	}
	return strings.EqualFold(n.Value, "true") || strings.EqualFold(n.Value, "yes") || strings.EqualFold(n.Value, "on") || n.Value == "y" || n.Value == "Y"
}

// entry is one key and value of a mapping.
type entry = yamlnode.Entry

// entries returns the entries of the mapping n, reporting a node that is
// not a mapping, keys that are not scalars and keys given twice.
func (p *parser) entries(n *yaml.Node, field string) []entry {
	if p.full {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n, field, "want a mapping, not a %s", kindName(n.Kind))
		return nil
	}
	return yamlnode.Entries(n,
		func(k *yaml.Node) {
			p.add(k, field, "config error, key is not of type string: a %s", kindName(k.Kind))
		},
		func(k, first *yaml.Node) {
			f := k.Value
			if field != "" {
				f = field + "." + f
			}
			p.add(k, f, "given twice; first at line %d", first.Line)
		})
}

// The helpers shared with the other YAML format.
var (
	deref    = yamlnode.Deref
	isNull   = yamlnode.IsNull
	kindName = yamlnode.KindName
)
