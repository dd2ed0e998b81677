package policyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/bucketd/bucketd/internal/yamlnode"

	yaml "go.yaml.in/yaml/v4"
)

// The YAML library is go.yaml.in/yaml/v4 because it reports a syntax error
// as a value, *yaml.LoadError, whose Mark is the line and column where the
// parser stopped and whose ContextMark is where the construct it was
// reading began (the '{' of a flow mapping left open). yaml.v3 reports only
// text, "yaml: line 3: did not find expected key", whose line is often the
// line before the block that holds the mistake; finding the mistake there
// meant matching the library's wording with a regular expression. Here no
// error text is parsed: a syntax problem's position comes from the fields,
// and its message is the library's Message, passed on as it is.

// decode parses data as YAML: doc is the first document, nil when there is
// none, and extra the second, nil when there is none.
//
// Duplicate keys are allowed here, since the walk reports them itself, with
// the field's path and the line of the first. The library's default limits
// on nesting depth stay on.
func decode(data []byte) (doc, extra *yaml.Node, err error) {
	l, err := yaml.NewLoader(bytes.NewReader(data), yaml.WithUniqueKeys(false))
	if err != nil {
		return nil, nil, err
	}
	var d, x yaml.Node
	if err := l.Load(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	if err := l.Load(&x); err != nil {
		if errors.Is(err, io.EOF) {
			return &d, nil, nil
		}
		return nil, nil, err
	}
	return &d, &x, nil
}

// syntaxProblem returns the problem that err, a failure to parse YAML, is.
// A *yaml.LoadError gives the line and column where the parser stopped,
// and, when the construct it was reading began elsewhere, that place too.
// Any other error (the library documents none) is reported with no
// position.
func syntaxProblem(err error) Problem {
	var le *yaml.LoadError
	if !errors.As(err, &le) {
		return Problem{Msg: "YAML syntax: " + err.Error()}
	}
	pr := Problem{Line: le.Mark.Line, Column: le.Mark.Column, Msg: "YAML syntax: " + le.Message}
	if c := le.ContextMark; le.ContextMsg != "" && c.Line > 0 && (c.Line != le.Mark.Line || c.Column != le.Mark.Column) {
		pr.Msg += fmt.Sprintf(" (%s at line %d, column %d)", le.ContextMsg, c.Line, c.Column)
	}
	if pr.Line <= 0 {
		pr.Line, pr.Column = 0, 0
	}
	return pr
}

// entry is one key and value of a mapping.
type entry = yamlnode.Entry

// entries returns the entries of the mapping n, reporting a node that is
// not a mapping, keys that are not scalars and keys given twice. Values are
// dereferenced aliases.
func (p *parser) entries(n *yaml.Node, path string) []entry {
	if p.full {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		what := "a mapping"
		if path == "" {
			what = "a mapping with policies"
		}
		p.add(n, path, "want %s", what)
		return nil
	}
	return yamlnode.Entries(n,
		func(k *yaml.Node) { p.add(k, path, "want a name as the key, not a %s", kindName(k.Kind)) },
		func(k, first *yaml.Node) { p.add(k, join(path, k.Value), "given twice; first at line %d", first.Line) })
}

// join names the field key of the mapping at path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// The helpers shared with the other YAML format.
var (
	deref    = yamlnode.Deref
	isNull   = yamlnode.IsNull
	kindName = yamlnode.KindName
)
