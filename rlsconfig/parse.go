package rlsconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v4"
)

// Config is a valid configuration: the rules of every domain. It is not
// changed after Parse or Load returns, so it is safe for concurrent use.
type Config struct {
	domains map[string]*level
	rules   int
}

// RateLimit is a descriptor's rate_limit block.
type RateLimit struct {
	// Name lets another rule replace this one (Replaces); "" for none.
	Name string
	// Replaces names the rules this one replaces in a request where both
	// match.
	Replaces []string
	// Unit and RequestsPerUnit are the limit: a bucket of RequestsPerUnit
	// tokens that earns RequestsPerUnit per Unit. RequestsPerUnit may be 0:
	// every request is over the limit. Unit is UnitUnknown when Unlimited.
	Unit            Unit
	RequestsPerUnit uint32
	// Unlimited rules always allow and keep no bucket.
	Unlimited bool
}

// Rule is the rate limit of one place in a domain's descriptor tree.
type Rule struct {
	Domain string
	// Path names the place as envoyproxy/ratelimit does, without the
	// domain: "key_value" or "key" per level, joined by '.'
	// ("message_type_marketing.to_number").
	Path string
	RateLimit
	ShadowMode     bool // refusals are counted and answered OK
	QuotaMode      bool // over the limit only when every quota rule of the request is
	DetailedMetric bool // statistics only
	ValueToMetric  bool // statistics only
	ShareThreshold bool // every value that matches its wildcard shares one bucket
	File           string
	Line           int
}

// level is one descriptor list: its entries by "key_value" (or "key" for
// an entry without a value), and its wildcard entries in file order.
type level struct {
	byKey map[string]*node
	wild  []wildcard
}

// node is one descriptor: its rule (nil for none) and its nested list.
type node struct {
	rule     *Rule
	share    string // the wildcard value, when share_threshold is set
	children *level // nil when it has none
}

// wildcard is an entry whose "key_value" holds a '*', split on it.
type wildcard struct {
	full  string
	parts []string
}

// Domains returns the names of the domains, sorted.
func (c *Config) Domains() []string {
	if c == nil {
		return nil
	}
	out := make([]string, 0, len(c.domains))
	for d := range c.domains {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Rules returns the number of rate limits (descriptors with a rate_limit).
func (c *Config) Rules() int {
	if c == nil {
		return 0
	}
	return c.rules
}

// Load reads every file of dir whose name ends in .yaml or .yml, skipping
// names that start with '.', in name order, and parses them as one
// configuration. A domain defined in two files is an error, as it is for
// envoyproxy/ratelimit (without MERGE_DOMAIN_CONFIG). A directory or file
// that cannot be read is an error that does not wrap bucket.ErrInvalid.
func Load(dir string) (*Config, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("rlsconfig: %w", err)
	}
	var files []File
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		path := filepath.Join(dir, n)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("rlsconfig: %w", err)
		}
		files = append(files, File{Name: path, Data: data})
	}
	return Parse(files...)
}

// File is one configuration file: its name, for the problems, and content.
type File struct {
	Name string
	Data []byte
}

// maxProblems is the most problems reported.
const maxProblems = 50

// Parse parses the files as one configuration. An invalid one returns nil
// and an *Error with every problem found (up to 50). No files is a valid,
// empty configuration: every descriptor is then without a limit.
func Parse(files ...File) (*Config, error) {
	p := parser{c: &Config{domains: map[string]*level{}}, domainFile: map[string]string{}}
	for _, f := range files {
		p.file(f)
	}
	if len(p.problems) > 0 {
		if p.full {
			p.problems = append(p.problems, Problem{Msg: fmt.Sprintf("too many problems: stopped after %d", maxProblems)})
		}
		return nil, &Error{Problems: p.problems}
	}
	return p.c, nil
}

type parser struct {
	c          *Config
	domainFile map[string]string // domain -> the file that defined it
	problems   []Problem
	full       bool
	name       string // the file being read
	nodes      int    // descriptors read, aliases counted at each use
}

// maxNodes bounds the descriptors read, counting each use of an alias: a
// few lines of aliases can otherwise stand for billions of descriptors.
const maxNodes = 1 << 20

func (p *parser) add(n *yaml.Node, field, format string, args ...any) {
	if len(p.problems) >= maxProblems {
		p.full = true
		return
	}
	pr := Problem{File: p.name, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		pr.Line, pr.Column = n.Line, n.Column
	}
	p.problems = append(p.problems, pr)
}

func (p *parser) file(f File) {
	p.name = f.Name
	l, err := yaml.NewLoader(bytes.NewReader(f.Data), yaml.WithUniqueKeys(false))
	var doc yaml.Node
	if err == nil {
		err = l.Load(&doc)
	}
	if errors.Is(err, io.EOF) {
		p.add(nil, "", "empty file: want a domain and its descriptors")
		return
	}
	if err != nil {
		var le *yaml.LoadError
		if errors.As(err, &le) && le.Mark.Line > 0 {
			p.problems = append(p.problems, Problem{File: f.Name, Line: le.Mark.Line, Column: le.Mark.Column, Msg: "YAML syntax: " + le.Message})
		} else {
			p.add(nil, "", "YAML syntax: %v", err)
		}
		return
	}
	var extra yaml.Node
	if err := l.Load(&extra); !errors.Is(err, io.EOF) {
		p.add(&extra, "", "a second YAML document: want one domain per file")
		return
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var domain string
	var descs *yaml.Node
	var domainNode *yaml.Node
	for _, e := range p.entries(root, "") {
		switch e.Key.Value {
		case "domain":
			domain, _ = p.str(e.Val, "domain")
			domainNode = e.Val
		case "descriptors":
			descs = e.Val
		default:
			p.unknown(e.Key, "")
		}
	}
	if p.full {
		return
	}
	if domain == "" {
		p.add(cmpNode(domainNode, root), "domain", "want a non-empty domain")
		return
	}
	if len(domain) > 255 {
		p.add(domainNode, "domain", "want a domain of at most 255 bytes")
		return
	}
	if prev, dup := p.domainFile[domain]; dup {
		p.add(domainNode, "domain", "duplicate domain %q: also in %s", domain, prev)
		return
	}
	p.domainFile[domain] = p.name
	lv := &level{byKey: map[string]*node{}}
	p.c.domains[domain] = lv
	if descs != nil && !isNull(descs) {
		p.list(descs, "descriptors", domain, "", lv, 1)
	}
}

func cmpNode(a, b *yaml.Node) *yaml.Node {
	if a != nil {
		return a
	}
	return b
}

// maxDepth bounds the nesting of descriptor lists: a request descriptor
// deeper than this could not use it anyway, and it keeps the walk bounded.
const maxDepth = 64

// list reads a descriptor list into lv.
func (p *parser) list(n *yaml.Node, field, domain, parent string, lv *level, depth int) {
	if depth > maxDepth {
		p.add(n, field, "descriptors nested more than %d deep", maxDepth)
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, field, "want a list of descriptors, not a %s", kindName(n.Kind))
		return
	}
	for i, item := range n.Content {
		if p.full {
			return
		}
		if p.nodes++; p.nodes > maxNodes {
			p.add(item, field, "more than %d descriptors", maxNodes)
			p.full = true
			return
		}
		p.descriptor(deref(item), fmt.Sprintf("%s[%d]", field, i), domain, parent, lv, depth)
	}
}

// descriptor reads one descriptor of a list into lv.
func (p *parser) descriptor(n *yaml.Node, field, domain, parent string, lv *level, depth int) {
	var key, value string
	var keyNode, rlNode, nested *yaml.Node
	r := Rule{Domain: domain, File: p.name, Line: n.Line}
	for _, e := range p.entries(n, field) {
		f := field + "." + e.Key.Value
		switch e.Key.Value {
		case "key":
			key, _ = p.str(e.Val, f)
			keyNode = e.Val
		case "value":
			value, _ = p.str(e.Val, f)
		case "rate_limit":
			rlNode = e.Val
		case "descriptors":
			nested = e.Val
		case "shadow_mode":
			r.ShadowMode = p.boolean(e.Val, f)
		case "quota_mode":
			r.QuotaMode = p.boolean(e.Val, f)
		case "detailed_metric":
			r.DetailedMetric = p.boolean(e.Val, f)
		case "value_to_metric":
			r.ValueToMetric = p.boolean(e.Val, f)
		case "share_threshold":
			r.ShareThreshold = p.boolean(e.Val, f)
		case "metadata":
			if e.Val.Kind != yaml.MappingNode && !isNull(e.Val) {
				p.add(e.Val, f, "want a mapping, not a %s", kindName(e.Val.Kind))
			}
		default:
			p.unknown(e.Key, field)
		}
	}
	if n.Kind != yaml.MappingNode {
		return // entries reported it
	}
	if key == "" {
		p.add(cmpNode(keyNode, n), field+".key", "descriptor has an empty key")
		return
	}
	final := key
	if value != "" {
		final += "_" + value
	}
	r.Path = parent + final
	if _, dup := lv.byKey[final]; dup {
		p.add(cmpNode(keyNode, n), field, "duplicate descriptor composite key '%s'", r.Path)
		return
	}
	nd := &node{}
	if r.ShareThreshold {
		if !strings.Contains(final, "*") {
			p.add(n, field+".share_threshold", "share_threshold can only be used with wildcard values (containing '*'), but found key '%s'", final)
		}
		nd.share = value
	}
	if rlNode != nil && !isNull(rlNode) {
		if p.rateLimit(rlNode, field+".rate_limit", &r.RateLimit) {
			rule := r
			nd.rule = &rule
			p.c.rules++
		}
	}
	if strings.Contains(final, "*") {
		lv.wild = append(lv.wild, wildcard{full: final, parts: strings.Split(final, "*")})
	}
	lv.byKey[final] = nd
	if nested != nil && !isNull(nested) {
		nd.children = &level{byKey: map[string]*node{}}
		p.list(nested, field+".descriptors", domain, r.Path+".", nd.children, depth+1)
	}
}

// rateLimit reads a rate_limit block into rl; it reports whether it is
// valid.
func (p *parser) rateLimit(n *yaml.Node, field string, rl *RateLimit) bool {
	before := len(p.problems)
	var unitNode *yaml.Node
	var unit string
	hasRPU := false
	for _, e := range p.entries(n, field) {
		f := field + "." + e.Key.Value
		switch e.Key.Value {
		case "unit":
			unit, _ = p.str(e.Val, f)
			unitNode = e.Val
		case "requests_per_unit":
			hasRPU = true
			v, err := strconv.ParseUint(e.Val.Value, 10, 64)
			if e.Val.Kind != yaml.ScalarNode || err != nil || v > math.MaxUint32 {
				p.add(e.Val, f, "want a whole number from 0 to %d, not %q", uint32(math.MaxUint32), e.Val.Value)
			}
			rl.RequestsPerUnit = uint32(v)
		case "unlimited":
			rl.Unlimited = p.boolean(e.Val, f)
		case "name":
			rl.Name, _ = p.str(e.Val, f)
		case "replaces":
			p.replaces(e.Val, f, rl)
		default:
			p.unknown(e.Key, field)
		}
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	u, ok := ParseUnit(unit)
	switch {
	case rl.Unlimited && ok:
		p.add(unitNode, field+".unit", "should not specify rate limit unit when unlimited")
	case !rl.Unlimited && !ok:
		p.add(cmpNode(unitNode, n), field+".unit", "invalid rate limit unit '%s': want second, minute, hour, day, week, month or year", unit)
	case !rl.Unlimited && !hasRPU:
		p.add(n, field+".requests_per_unit", "missing: want the requests allowed per unit")
	}
	rl.Unit = u
	if l, ok := rl.Limit(); ok && len(p.problems) == before {
		if err := l.Validate(); err != nil {
			p.add(n, field, "%d per %s is beyond bucketd's range: %v", rl.RequestsPerUnit, u, err)
		}
	}
	for _, r := range rl.Replaces {
		if r == rl.Name {
			p.add(n, field+".replaces", "replaces should not contain name of same descriptor")
			break
		}
	}
	return len(p.problems) == before
}

func (p *parser) replaces(n *yaml.Node, field string, rl *RateLimit) {
	if n.Kind != yaml.SequenceNode {
		p.add(n, field, "want a list of {name: ...}, not a %s", kindName(n.Kind))
		return
	}
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		name := ""
		for _, e := range p.entries(deref(item), f) {
			if e.Key.Value == "name" {
				name, _ = p.str(e.Val, f+".name")
			} else {
				p.unknown(e.Key, f)
			}
		}
		if name == "" {
			p.add(item, f+".name", "should not have an empty replaces entry")
			continue
		}
		rl.Replaces = append(rl.Replaces, name)
	}
}
