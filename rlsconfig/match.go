package rlsconfig

import "strings"

// Entry is one (key, value) pair of a request descriptor.
type Entry struct{ Key, Value string }

// Match is the outcome of matching one request descriptor.
type Match struct {
	// Rule is the rule that applies; nil when none does (no limit).
	Rule *Rule
	// Key is the bucket's key within the domain: the request's entries as
	// "key_value" ("key" when the value is empty), joined by '.', where an
	// entry matched by a share_threshold wildcard shows the wildcard
	// ("files_files/*") so that every value it matches shares one bucket.
	// It is envoyproxy/ratelimit's cache key without the domain and the
	// window. "" when Rule is nil.
	Key string
}

// Match returns the rule of domain that applies to the descriptor entries,
// as envoyproxy/ratelimit's GetLimit finds it (see the package doc). An
// unknown domain, or no entries, match nothing.
func (c *Config) Match(domain string, entries []Entry) Match {
	if c == nil || len(entries) == 0 {
		return Match{}
	}
	lv := c.domains[domain]
	var shared map[int]string // entry index -> the share_threshold wildcard value
	var rule *Rule
	for i, e := range entries {
		if lv == nil {
			break
		}
		full := e.Key + "_" + e.Value
		nd := lv.byKey[full]
		if nd == nil {
			for _, w := range lv.wild {
				if wildcardMatch(w.parts, full) {
					nd = lv.byKey[w.full]
					if nd.share != "" {
						if shared == nil {
							shared = map[int]string{}
						}
						shared[i] = nd.share
					}
					break
				}
			}
		}
		if nd == nil {
			nd = lv.byKey[e.Key]
		}
		if nd == nil {
			break
		}
		if i == len(entries)-1 {
			rule = nd.rule
		}
		lv = nd.children
	}
	if rule == nil {
		return Match{}
	}
	return Match{Rule: rule, Key: bucketKey(entries, shared)}
}

// bucketKey joins the entries as Match.Key says.
func bucketKey(entries []Entry, shared map[int]string) string {
	var b strings.Builder
	for i, e := range entries {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.Key)
		v := e.Value
		if s, ok := shared[i]; ok {
			v = s
		}
		if v != "" {
			b.WriteByte('_')
			b.WriteString(v)
		}
	}
	return b.String()
}

// DescriptorKey returns the bucket key of a descriptor that carries its own
// limit (Envoy's per-descriptor limit override): its entries joined as
// Match.Key joins them.
func DescriptorKey(entries []Entry) string { return bucketKey(entries, nil) }

// wildcardMatch reports whether s matches the pattern split on '*' into
// parts: each '*' matches any run of characters, as envoyproxy/ratelimit's
// wildcardMatch does.
func wildcardMatch(parts []string, s string) bool {
	if len(parts) == 1 {
		return parts[0] == s
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	rest := s[len(first) : len(s)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}
