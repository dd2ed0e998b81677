package policyfile

import (
	"cmp"
	"fmt"
	"os"
	"regexp"
	"slices"

	yaml "go.yaml.in/yaml/v4"

	"github.com/bucketd/bucketd/bucket"
)

// Config is the content of a valid policies file.
type Config struct {
	// Default names the policy a take that names none uses: "" when the
	// file names none, which means bucket.DefaultPolicy. Otherwise it is
	// bucket.DefaultPolicy or the name of one of Policies.
	Default string
	// Policies are the file's policies, in the order of the file; each
	// passes bucket.Policy.Validate, and no two share a name.
	Policies []bucket.Policy
}

// Load reads and parses the policies file at path (see Parse). A file that
// cannot be read is an error that does not wrap bucket.ErrInvalid.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("policyfile: load config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a policies file's contents; name is the file's name, for the
// problems. An invalid file returns a zero Config and an *Error with every
// problem found (up to 50).
func Parse(name string, data []byte) (Config, error) {
	p := parser{names: make(map[string]bool)}
	c := p.file(data)
	if len(p.problems) > 0 {
		slices.SortStableFunc(p.problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		if p.full {
			p.problems = append(p.problems, Problem{Msg: fmt.Sprintf("too many problems: stopped after %d", maxProblems)})
		}
		return Config{}, &Error{Name: name, Problems: p.problems}
	}
	return c, nil
}

// policyNameRE is what a policy may be called: it appears in URLs, RESP
// commands and RateLimit headers, so it is kept to safe characters.
var policyNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

const badNameMsg = "policy name %q: want 1 to 64 letters, digits, '_', '.' or '-'"

// parser collects the problems of one file.
type parser struct {
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
func (p *parser) add(n *yaml.Node, field, format string, args ...any) {
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
func (p *parser) file(data []byte) Config {
	doc, extra, err := decode(data)
	if err != nil {
		p.problems = append(p.problems, syntaxProblem(err))
		return Config{}
	}
	if doc == nil {
		p.add(nil, "", "the file is empty: want a mapping with policies")
		return Config{}
	}
	if extra != nil {
		p.add(extra, "", "more than one YAML document (---): want one")
	}

	root := deref(doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = deref(root.Content[0])
	}
	if isNull(root) {
		p.add(root, "", "the file is empty: want a mapping with policies")
		return Config{}
	}
	var c Config
	var defNode, polNode *yaml.Node
	for _, e := range p.entries(root, "") {
		switch e.Key.Value {
		case "default":
			defNode = e.Val
			c.Default = p.name(e.Val, "default")
		case "policies":
			polNode = e.Key
			c.Policies = p.policies(e.Val)
		default:
			p.add(e.Key, e.Key.Value, "unknown field; the file has default and policies")
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

// name parses the scalar n as a policy name; "" when it is not one.
func (p *parser) name(n *yaml.Node, field string) string {
	if n.Kind != yaml.ScalarNode || isNull(n) {
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
func (p *parser) policies(n *yaml.Node) []bucket.Policy {
	const field = "policies"
	if isNull(n) || (n.Kind == yaml.MappingNode && len(n.Content) == 0) {
		p.add(n, field, "none given: want a mapping of policy names to limits")
		return nil
	}
	var out []bucket.Policy
	for _, e := range p.entries(n, field) {
		if p.full {
			break
		}
		name := e.Key.Value
		path := field + "." + name
		p.names[name] = true
		before := len(p.problems)
		if !policyNameRE.MatchString(name) {
			p.add(e.Key, path, badNameMsg, name)
		}
		pol := p.policy(e.Val, path, name)
		if len(p.problems) > before {
			continue
		}
		if err := pol.Validate(); err != nil { // what the checks above missed
			p.add(e.Key, path, "%v", err)
			continue
		}
		out = append(out, pol)
	}
	return out
}

// policy parses one policy: capacity and rate (one limit), or limits, and
// shadow.
func (p *parser) policy(n *yaml.Node, path, name string) bucket.Policy {
	pol := bucket.Policy{Name: name}
	if isNull(n) {
		p.add(n, path, "no limits: give capacity and rate, or limits")
		return pol
	}
	var capKey, capVal, rateKey, rateVal, limitsKey, limitsVal *yaml.Node
	for _, e := range p.entries(n, path) {
		switch e.Key.Value {
		case "capacity":
			capKey, capVal = e.Key, e.Val
		case "rate":
			rateKey, rateVal = e.Key, e.Val
		case "limits":
			limitsKey, limitsVal = e.Key, e.Val
		case "shadow":
			pol.Shadow = p.bool(e.Val, path+".shadow")
		case "on_store_error":
			pol.OnStoreError = p.failMode(e.Val, path+".on_store_error")
		default:
			p.add(e.Key, path+"."+e.Key.Value, "unknown field; a policy has capacity and rate, or limits, shadow and on_store_error")
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
func (p *parser) limitList(n *yaml.Node, path string) []bucket.Limit {
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
		item = deref(item)
		ipath := fmt.Sprintf("%s[%d]", path, i)
		if item.Kind != yaml.MappingNode {
			p.add(item, ipath, "want {capacity, rate}")
			continue
		}
		var capVal, rateVal *yaml.Node
		for _, e := range p.entries(item, ipath) {
			switch e.Key.Value {
			case "capacity":
				capVal = e.Val
			case "rate":
				rateVal = e.Val
			default:
				p.add(e.Key, ipath+"."+e.Key.Value, "unknown field; a limit has capacity and rate")
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
func (p *parser) limit(n *yaml.Node, path string, capVal, rateVal *yaml.Node) (bucket.Limit, bool) {
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
func (p *parser) scalar(n *yaml.Node, field, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.add(n, field, "want %s", want)
		return "", false
	}
	return n.Value, true
}

// bool parses a YAML boolean: true or false.
// failMode parses on_store_error: closed or open.
func (p *parser) failMode(n *yaml.Node, field string) bucket.FailMode {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.add(n, field, "want closed or open")
		return bucket.FailDefault
	}
	m, err := bucket.ParseFailMode(n.Value)
	if err != nil {
		p.add(n, field, "want closed or open, not %q", n.Value)
	}
	return m
}

func (p *parser) bool(n *yaml.Node, field string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		p.add(n, field, "want true or false")
	}
	return b
}
