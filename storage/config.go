package storage

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/bucketd/bucketd/bucket"
)

// A config file is YAML: an optional default and a mapping of named
// policies, each with one limit (capacity and rate) or a list of limits:
//
//	default: free            # the policy a take that names none uses
//	policies:
//	  free:
//	    capacity: 5
//	    rate: 1/3s
//	  paid:
//	    limits:
//	      - {capacity: 100, rate: 10/s}
//	      - {capacity: 100000, rate: 100000/d}
//	  new-search:
//	    capacity: 10
//	    rate: 1/s
//	    shadow: true
//
// The file is walked as a yaml.Node tree, not decoded into structs, so that
// every problem carries its line and column, all of them are reported at
// once, and numbers keep their literal text ("0.1" is exactly 0.1 tokens).

// ConfigError is a config file that is not valid. It lists every problem
// found, in the order of the file; after 50, the last says that there were
// more. It wraps bucket.ErrInvalid.
type ConfigError struct {
	Name     string // the file, as given to ParseConfig
	Problems []Problem
}

// Problem is one thing wrong in a config file.
type Problem struct {
	// Line and Column are 1-based; 0 when unknown (Column is unknown for a
	// YAML syntax error, both for an empty file).
	Line, Column int
	// Field is the path of the field at fault, such as
	// "policies.paid.limits[1].rate"; "" for the file as a whole.
	Field string
	Msg   string
}

// Error returns one problem per line, each as
// "FILE:LINE:COLUMN: FIELD: MESSAGE", after a count when there are several.
func (e *ConfigError) Error() string {
	var b strings.Builder
	if len(e.Problems) > 1 {
		fmt.Fprintf(&b, "%s: %d problems:", e.name(), len(e.Problems))
	}
	for i, p := range e.Problems {
		if i > 0 || len(e.Problems) > 1 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Where(p))
		b.WriteString(p.Msg)
	}
	return b.String()
}

// Where returns p's position in the form "FILE:LINE:COLUMN: FIELD: ", with
// the parts that are unknown left out.
func (e *ConfigError) Where(p Problem) string {
	s := e.name()
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
		if p.Column > 0 {
			s += ":" + strconv.Itoa(p.Column)
		}
	}
	s += ": "
	if p.Field != "" {
		s += p.Field + ": "
	}
	return s
}

func (e *ConfigError) name() string {
	if e.Name == "" {
		return "config"
	}
	return e.Name
}

// Unwrap makes a ConfigError match bucket.ErrInvalid.
func (e *ConfigError) Unwrap() error { return bucket.ErrInvalid }

// LoadConfig reads and parses the config file at path (see ParseConfig).
func LoadConfig(path string) (PolicyConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return PolicyConfig{}, fmt.Errorf("storage: load config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses a config file's contents; name is the file's name, for
// the problems. The policies come in the order of the file. An invalid file
// returns a *ConfigError with every problem found (up to 50), and no
// policies.
func ParseConfig(name string, data []byte) (PolicyConfig, error) {
	p := configParser{names: make(map[string]bool)}
	c := p.file(data)
	if len(p.problems) > 0 {
		slices.SortStableFunc(p.problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		if p.full {
			p.problems = append(p.problems, Problem{Msg: fmt.Sprintf("too many problems: stopped after %d", maxProblems)})
		}
		return PolicyConfig{}, &ConfigError{Name: name, Problems: p.problems}
	}
	return c, nil
}

// policyNameRE is what a policy may be called: it appears in URLs, RESP
// commands and RateLimit headers, so it is kept to safe characters.
var policyNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

const badNameMsg = "policy name %q: want 1 to 64 letters, digits, '_', '.' or '-'"

// configParser collects the problems of one file.
type configParser struct {
	problems []Problem
	names    map[string]bool // every policy name in the file, valid or not
	// full is set when maxProblems are found; the walk then stops.
	full bool
}

// maxProblems is the most problems reported. Beyond a screenful they help
// no one, and a file whose aliases name one faulty mapping from a thousand
// places would otherwise yield a problem per use: millions from kilobytes.
const maxProblems = 50

// add records a problem at n (nil for the file as a whole).
func (p *configParser) add(n *yaml.Node, field, format string, args ...any) {
	if len(p.problems) >= maxProblems {
		p.full = true
		return
	}
	pr := Problem{Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		pr.Line, pr.Column = n.Line, n.Column
	}
	p.problems = append(p.problems, pr)
}

// file parses a whole file.
func (p *configParser) file(data []byte) PolicyConfig {
	doc, extra, err := decodeYAML(data)
	if err != nil {
		p.syntax(data, err)
		return PolicyConfig{}
	}
	if doc == nil {
		p.add(nil, "", "the file is empty: want a mapping with policies")
		return PolicyConfig{}
	}
	if extra != nil {
		p.add(extra, "", "more than one YAML document (---): want one")
	}

	root := yamlDeref(doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = yamlDeref(root.Content[0])
	}
	if isYAMLNull(root) {
		p.add(root, "", "the file is empty: want a mapping with policies")
		return PolicyConfig{}
	}
	var c PolicyConfig
	var defNode, polNode *yaml.Node
	for _, e := range p.entries(root, "") {
		switch e.key.Value {
		case "default":
			defNode = e.val
			c.Default = p.name(e.val, "default")
		case "policies":
			polNode = e.key
			c.Policies = p.policies(e.val)
		default:
			p.add(e.key, e.key.Value, "unknown field; the file has default and policies")
		}
	}
	if root.Kind == yaml.MappingNode && polNode == nil {
		p.add(root, "policies", "missing: the file must name at least one policy")
	}
	if c.Default != "" && c.Default != bucket.DefaultPolicy && !p.names[c.Default] {
		p.add(defNode, "default", "policy %q is not in policies", c.Default)
	}
	return c
}

// decodeYAML parses data as YAML: doc is the first document, nil when there is
// none, and extra the second, nil when there is none.
func decodeYAML(data []byte) (doc, extra *yaml.Node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var d, x yaml.Node
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	if err := dec.Decode(&x); err != nil {
		if errors.Is(err, io.EOF) {
			return &d, nil, nil
		}
		return nil, nil, err
	}
	return &d, &x, nil
}

// syntaxErrRE splits yaml.v3's syntax errors, "yaml: line 3: did not find
// expected key", into the line and the message.
var syntaxErrRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntax records a YAML syntax error with its line.
func (p *configParser) syntax(data []byte, err error) {
	line, msg := splitSyntaxErr(err)
	p.problems = append(p.problems, Problem{Line: syntaxLine(data, err.Error(), line), Msg: "YAML syntax: " + msg})
}

func splitSyntaxErr(err error) (line int, msg string) {
	m := syntaxErrRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, err.Error()
	}
	line, _ = strconv.Atoi(m[1]) // "" for no line: 0
	return line, m[2]
}

// syntaxLine returns the line of the mistake that makes data fail to parse
// with the error text errText, which says the line is reported.
//
// yaml.v3 reports many syntax errors not at the mistake but at the line
// before the start of the block that holds it (it counts that line from
// 0): "did not find expected key" at line 1 for a key mis-indented on line
// 9. So this finds the first n such that data's first n lines fail with the
// same error, by bisection: the mistake ends that prefix. Requiring the
// same text, reported line included, keeps a prefix that ends inside an
// earlier, valid flow collection ({...} across lines) from counting.
func syntaxLine(data []byte, errText string, reported int) int {
	ends := []int{0} // ends[n] is the length of the first n lines
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(n int) bool {
		_, _, err := decodeYAML(data[:ends[n]])
		return err != nil && err.Error() == errText
	}
	lo, hi := 0, len(ends)-1 // the first lo lines do not fail so; the first hi do
	if !fails(hi) {
		return reported
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// name parses the scalar n as a policy name; "" when it is not one.
func (p *configParser) name(n *yaml.Node, field string) string {
	if n.Kind != yaml.ScalarNode || isYAMLNull(n) {
		p.add(n, field, "want a policy name")
		return ""
	}
	if !policyNameRE.MatchString(n.Value) {
		p.add(n, field, badNameMsg, n.Value)
		return ""
	}
	return n.Value
}

// policies parses the mapping of policies by name.
func (p *configParser) policies(n *yaml.Node) []bucket.Policy {
	const field = "policies"
	if isYAMLNull(n) || (n.Kind == yaml.MappingNode && len(n.Content) == 0) {
		p.add(n, field, "none given: want a mapping of policy names to limits")
		return nil
	}
	var out []bucket.Policy
	for _, e := range p.entries(n, field) {
		if p.full {
			break
		}
		name := e.key.Value
		path := field + "." + name
		p.names[name] = true
		before := len(p.problems)
		if !policyNameRE.MatchString(name) {
			p.add(e.key, path, badNameMsg, name)
		}
		pol := p.policy(e.val, path, name)
		if len(p.problems) > before {
			continue
		}
		if err := pol.Validate(); err != nil { // what the checks above missed
			p.add(e.key, path, "%v", err)
			continue
		}
		out = append(out, pol)
	}
	return out
}

// policy parses one policy: capacity and rate (one limit), or limits, and
// shadow.
func (p *configParser) policy(n *yaml.Node, path, name string) bucket.Policy {
	pol := bucket.Policy{Name: name}
	if isYAMLNull(n) {
		p.add(n, path, "no limits: give capacity and rate, or limits")
		return pol
	}
	var capKey, capVal, rateKey, rateVal, limitsKey, limitsVal *yaml.Node
	for _, e := range p.entries(n, path) {
		switch e.key.Value {
		case "capacity":
			capKey, capVal = e.key, e.val
		case "rate":
			rateKey, rateVal = e.key, e.val
		case "limits":
			limitsKey, limitsVal = e.key, e.val
		case "shadow":
			pol.Shadow = p.bool(e.val, path+".shadow")
		default:
			p.add(e.key, path+"."+e.key.Value, "unknown field; a policy has capacity and rate, or limits, and shadow")
		}
	}
	if n.Kind != yaml.MappingNode {
		return pol
	}
	switch {
	case limitsKey != nil && (capKey != nil || rateKey != nil):
		p.add(limitsKey, path+".limits", "give either capacity and rate, or limits, not both")
	case limitsKey != nil:
		pol.Limits = p.limitList(limitsVal, path+".limits")
	case capKey == nil && rateKey == nil:
		p.add(n, path, "no limits: give capacity and rate, or limits")
	default:
		if l, ok := p.limit(n, path, capVal, rateVal); ok {
			pol.Limits = []bucket.Limit{l}
		}
	}
	return pol
}

// limitList parses a sequence of {capacity, rate}.
func (p *configParser) limitList(n *yaml.Node, path string) []bucket.Limit {
	if n.Kind != yaml.SequenceNode {
		p.add(n, path, "want a list of {capacity, rate}")
		return nil
	}
	switch {
	case len(n.Content) == 0:
		p.add(n, path, "empty: want at least one {capacity, rate}")
		return nil
	case len(n.Content) > bucket.MaxLimits:
		p.add(n, path, "%d limits, more than the maximum of %d", len(n.Content), bucket.MaxLimits)
		return nil
	}
	out := make([]bucket.Limit, 0, len(n.Content))
	for i, item := range n.Content {
		if p.full {
			break
		}
		item = yamlDeref(item)
		ipath := fmt.Sprintf("%s[%d]", path, i)
		if item.Kind != yaml.MappingNode {
			p.add(item, ipath, "want {capacity, rate}")
			continue
		}
		var capVal, rateVal *yaml.Node
		for _, e := range p.entries(item, ipath) {
			switch e.key.Value {
			case "capacity":
				capVal = e.val
			case "rate":
				rateVal = e.val
			default:
				p.add(e.key, ipath+"."+e.key.Value, "unknown field; a limit has capacity and rate")
			}
		}
		if l, ok := p.limit(item, ipath, capVal, rateVal); ok {
			out = append(out, l)
		}
	}
	return out
}

// limit parses one limit from its capacity and rate values, either of which
// may be missing (nil); n is the mapping that holds them.
func (p *configParser) limit(n *yaml.Node, path string, capVal, rateVal *yaml.Node) (bucket.Limit, bool) {
	before := len(p.problems)
	var l bucket.Limit
	if capVal == nil {
		p.add(n, path, "capacity is missing")
	} else if c, ok := p.scalar(capVal, path+".capacity", "a number of tokens such as 5 or 0.5"); ok {
		var err error
		if l.Capacity, err = bucket.ParseTokens(c); err != nil {
			p.add(capVal, path+".capacity", "%v", err)
		}
	}
	if rateVal == nil {
		p.add(n, path, "rate is missing")
	} else if r, ok := p.scalar(rateVal, path+".rate", "TOKENS/PERIOD such as 10/s or 1/3s"); ok {
		var err error
		if l.Rate, err = bucket.ParseRate(r); err != nil {
			p.add(rateVal, path+".rate", "%v", err)
		}
	}
	if len(p.problems) > before {
		return l, false
	}
	// ParseRate has validated the rate, so what is left is the capacity.
	if err := l.Validate(); err != nil {
		p.add(capVal, path+".capacity", "%v", err)
		return l, false
	}
	return l, true
}

// scalar returns the literal text of the scalar n, or reports that want was
// expected and returns false.
func (p *configParser) scalar(n *yaml.Node, field, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isYAMLNull(n) {
		p.add(n, field, "want %s", want)
		return "", false
	}
	return n.Value, true
}

// bool parses a YAML boolean: true or false.
func (p *configParser) bool(n *yaml.Node, field string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		p.add(n, field, "want true or false")
	}
	return b
}

// yamlEntry is one key and value of a mapping.
type yamlEntry struct{ key, val *yaml.Node }

// entries returns the entries of the mapping n, reporting a node that is
// not a mapping, keys that are not scalars and keys given twice (yaml.v3
// reports duplicates only when it decodes into Go values, not into a Node
// tree). Values are dereferenced aliases.
func (p *configParser) entries(n *yaml.Node, path string) []yamlEntry {
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
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	out := make([]yamlEntry, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlDeref(n.Content[i]), yamlDeref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(k, path, "want a name as the key, not a %s", yamlKindName(k.Kind))
			continue
		}
		field := k.Value
		if path != "" {
			field = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			p.add(k, field, "given twice; first at line %d", first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, yamlEntry{k, v})
	}
	return out
}

// yamlDeref returns the node an alias (*name) stands for. The walk above goes
// only as deep as the format, so even an alias to its own ancestor ends.
func yamlDeref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isYAMLNull reports whether n is an empty value: "key:" with nothing after it,
// "~" or "null".
func isYAMLNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func yamlKindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}
