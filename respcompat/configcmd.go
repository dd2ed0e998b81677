package respcompat

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// CONFIG and its subcommands: GET, SET, RESETSTAT, REWRITE (refused), HELP.

var configSubs = []subcommand{
	{"get", -3, configGet},
	{"set", -4, configSet},
	{"resetstat", 2, configResetStat},
	{"rewrite", 2, func(c *conn, args [][]byte) {
		c.err("ERR CONFIG REWRITE is not supported: bucketd does not write its configuration; " + reloadHint)
	}},
	{"help", 2, func(c *conn, args [][]byte) {
		c.help("CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values,",
			"    among them default-policy, policies and policy.<name> for each policy.",
			"SET <directive> <value>", "    Set the configuration <directive> to <value>: capacity and rate of the",
			"    default policy; maxmemory and maxmemory-policy are accepted and ignored.",
			"    Policies cannot be set: edit the --config file and reload it.",
			"RESETSTAT", "    Reset statistics reported by the INFO command.",
			"REWRITE", "    Not supported: bucketd does not write its configuration.",
			"HELP", "    Print this help.")
	}},
}

// reloadHint tells where policies are changed, for the errors of CONFIG
// SET and REWRITE.
const reloadHint = "policies come from the --config file: edit it and reload (SIGHUP or POST /v1/reload)"

func cmdConfig(c *conn, args [][]byte) { c.dispatch("config", configSubs, args) }

// configParams are the parameters CONFIG GET knows, in the order it shows
// them; policy.<name>, for each policy by name, follows policies. capacity,
// rate and default-policy are the default policy's; the others after
// policies are what clients and tools ask for (redis-benchmark asks for
// save and appendonly).
var configParams = []string{"capacity", "rate", "default-policy", "policies", "maxmemory", "maxmemory-policy", "save", "appendonly", "databases", "maxclients", "timeout", "port"}

// CONFIG GET parameter [parameter ...]: each a glob pattern, matched in any
// case; a policy's name keeps its own case in the reply.
func configGet(c *conn, args [][]byte) {
	patterns := make([]string, len(args)-2)
	for i, p := range args[2:] {
		patterns[i] = strings.ToLower(string(p))
	}
	matches := func(name string) bool {
		name = strings.ToLower(name)
		for _, p := range patterns {
			if globMatch(name, p) {
				return true
			}
		}
		return false
	}
	var pol *bucket.Policy        // the default policy, once read
	var infos []bucket.PolicyInfo // every policy, once read
	var out []string
	for _, name := range configParams {
		if name == "policies" {
			infos = c.store.Policies()
		}
		if matches(name) {
			var v string
			switch name {
			case "capacity", "rate", "default-policy":
				if pol == nil {
					p, err := c.store.Policy("")
					if err != nil {
						c.writeError(err)
						return
					}
					pol = &p
				}
				if name == "default-policy" {
					v = pol.Name
					break
				}
				vals := make([]string, len(pol.Limits))
				for i, l := range pol.Limits {
					if name == "capacity" {
						vals[i] = l.Capacity.String()
					} else {
						vals[i] = l.Rate.String()
					}
				}
				v = strings.Join(vals, " ")
			case "policies":
				names := make([]string, len(infos))
				for i, p := range infos {
					names[i] = p.Name
				}
				v = strings.Join(names, " ") // as Redis lists save's pairs
			case "maxmemory", "maxmemory-policy":
				c.s.mu.Lock()
				v = c.s.maxmemory
				if name == "maxmemory-policy" {
					v = c.s.policy
				}
				c.s.mu.Unlock()
			case "save":
				v = "" // bucketd writes on its own schedule, not Redis's
			case "appendonly":
				v = "no"
			case "databases":
				v = "1"
			case "maxclients":
				v = strconv.Itoa(c.s.cfg.MaxClients)
			case "timeout":
				v = strconv.FormatInt(bucket.Ceil(c.s.cfg.IdleTimeout, time.Second), 10)
			case "port":
				v = "0"
				if a, ok := c.s.addr().(*net.TCPAddr); ok {
					v = strconv.Itoa(a.Port)
				}
			}
			out = append(out, name, v)
		}
		if name == "policies" {
			for _, p := range infos {
				if param := "policy." + p.Name; matches(param) {
					out = append(out, param, policyValue(p.Policy))
				}
			}
		}
	}
	c.array(len(out))
	for _, s := range out {
		c.bulkString(s)
	}
}

// policyValue is a policy as CONFIG GET policy.<name> shows it: each limit
// as CAPACITY@RATE, written as --capacity and --rate take them, separated
// by commas in the policy's order, then " shadow" for a shadow policy:
// "5@1/3s", "100@10/s,100000@100000/d", "10@1/s shadow".
func policyValue(p bucket.Policy) string {
	var b []byte
	for i, l := range p.Limits {
		if i > 0 {
			b = append(b, ',')
		}
		b = l.Capacity.AppendText(b)
		b = append(b, '@')
		b = append(b, l.Rate.String()...)
	}
	if p.Shadow {
		b = append(b, " shadow"...)
	}
	return string(b)
}

var evictionPolicies = []string{"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction"}

// CONFIG SET parameter value [parameter value ...]: capacity and rate set
// the default policy's limit (it must have one limit); maxmemory and
// maxmemory-policy are checked, shown back by CONFIG GET, and otherwise
// ignored. Nothing is set unless every pair is valid.
//
// default-policy, policies and policy.<name> are refused: policies come
// from the config file, whose reload would undo a change made here, and
// the Store can only replace them all at once.
func configSet(c *conn, args [][]byte) {
	if len(args)%2 != 0 {
		c.arityErr("config|set")
		return
	}
	failed := func(name, why string) {
		c.err("ERR CONFIG SET failed (possibly related to argument '" + name + "') - " + why)
	}
	seen := make(map[string]bool)
	var capacity *bucket.Tokens
	var rate *bucket.Rate
	var maxmemory, policy *string
	for i := 2; i < len(args); i += 2 {
		name, val := strings.ToLower(string(args[i])), string(args[i+1])
		if seen[name] {
			failed(name, "duplicate parameter")
			return
		}
		seen[name] = true
		switch name {
		case "capacity":
			t, err := bucket.ParseTokens(val)
			if err != nil {
				failed(name, err.Error())
				return
			}
			capacity = &t
		case "rate":
			r, err := bucket.ParseRate(val)
			if err != nil {
				failed(name, err.Error())
				return
			}
			rate = &r
		case "maxmemory":
			if !isMemory(val) {
				failed(name, "argument must be a memory value")
				return
			}
			maxmemory = &val
		case "maxmemory-policy":
			v := strings.ToLower(val)
			if !slices.Contains(evictionPolicies, v) {
				failed(name, "argument(s) must be one of the following: "+strings.Join(evictionPolicies, ", "))
				return
			}
			policy = &v
		case "default-policy", "policies":
			failed(name, "can't set immutable config: "+reloadHint)
			return
		default:
			if strings.HasPrefix(name, "policy.") {
				failed(string(args[i]), "can't set immutable config: "+reloadHint)
				return
			}
			c.err("ERR Unknown option or number of arguments for CONFIG SET - '" + string(args[i]) + "'")
			return
		}
	}
	if capacity != nil || rate != nil {
		name := "capacity"
		if capacity == nil {
			name = "rate"
		}
		p, err := c.store.Policy("")
		if err != nil {
			c.writeError(err)
			return
		}
		if len(p.Limits) != 1 {
			failed(name, "the default policy has "+strconv.Itoa(len(p.Limits))+" limits; only a policy of one limit can be set here")
			return
		}
		l := p.Limits[0]
		if capacity != nil {
			l.Capacity = *capacity
		}
		if rate != nil {
			l.Rate = *rate
		}
		if err := l.Validate(); err != nil {
			failed(name, err.Error())
			return
		}
		if err := c.store.SetDefaultLimit(l); err != nil {
			c.writeError(err)
			return
		}
	}
	c.s.mu.Lock()
	if maxmemory != nil {
		c.s.maxmemory = *maxmemory
	}
	if policy != nil {
		c.s.policy = *policy
	}
	c.s.mu.Unlock()
	c.ok()
}

// isMemory reports whether s is a memory amount as Redis reads one: digits
// and an optional unit b, k, kb, m, mb, g or gb.
func isMemory(s string) bool {
	s = strings.ToLower(s)
	for _, u := range []string{"kb", "mb", "gb", "b", "k", "m", "g"} {
		if rest, ok := strings.CutSuffix(s, u); ok {
			s = rest
			break
		}
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func configResetStat(c *conn, args [][]byte) {
	s := c.s
	s.mu.Lock()
	s.accepted.Store(0)
	s.rejected.Store(0)
	s.doneCmds.Store(0)
	s.maxInputBuf.Store(0)
	for o := range s.clients {
		o.ncmds.Store(0)
	}
	s.mu.Unlock()
	c.ok()
}
