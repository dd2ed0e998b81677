package respcompat

import (
	"maps"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// INFO [section ...]: the sections server, clients, stats, persistence,
// keyspace, policies and bucketd (Config.Info's fields), in Redis's format.
// No section, "default", "all" and "everything" give them all; an unknown
// section gives nothing.
func cmdInfo(c *conn, args [][]byte) {
	all := len(args) == 1
	want := make(map[string]bool)
	for _, a := range args[1:] {
		switch s := strings.ToLower(string(a)); s {
		case "default", "all", "everything":
			all = true
		default:
			want[s] = true
		}
	}
	s := c.s
	var b strings.Builder
	wanted := func(name string) bool { return all || want[strings.ToLower(name)] }
	section := func(name string, fields ...string) {
		if !wanted(name) {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for i := 0; i+1 < len(fields); i += 2 {
			b.WriteString(fields[i] + ":" + fields[i+1] + "\r\n")
		}
	}
	now := s.now()
	up := int64(now.Sub(s.started) / time.Second)
	port := ""
	if a, ok := s.addr().(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
	}
	section("Server",
		"redis_version", redisVersion,
		"redis_mode", "standalone",
		"os", runtime.GOOS+" "+runtime.GOARCH,
		"arch_bits", strconv.Itoa(strconv.IntSize),
		"process_id", strconv.Itoa(os.Getpid()),
		"tcp_port", port,
		"server_time_usec", strconv.FormatInt(now.UnixMicro(), 10),
		"uptime_in_seconds", strconv.FormatInt(up, 10),
		"uptime_in_days", strconv.FormatInt(up/86400, 10),
	)
	conns, cmds := s.counts()
	section("Clients",
		"connected_clients", strconv.Itoa(conns),
		"maxclients", strconv.Itoa(s.cfg.MaxClients),
		"client_recent_max_input_buffer", strconv.FormatInt(max(s.maxInputBuf.Load(), minBuf), 10),
		"blocked_clients", "0",
	)
	section("Stats",
		"total_connections_received", strconv.FormatUint(s.accepted.Load(), 10),
		"total_commands_processed", strconv.FormatUint(cmds, 10),
		"rejected_connections", strconv.FormatUint(s.rejected.Load(), 10),
	)
	status := "ok"
	if s.saveFailed.Load() {
		status = "err"
	}
	section("Persistence",
		"loading", "0",
		"rdb_bgsave_in_progress", strconv.FormatInt(b2i(s.saving.Load()), 10),
		"rdb_last_save_time", strconv.FormatInt(s.store.LastSave().Unix(), 10),
		"rdb_last_bgsave_status", status,
		"aof_enabled", "0",
	)
	if n := s.store.Len(); n > 0 {
		// Every bucket is forgotten once full: each "expires".
		section("Keyspace", "db0", "keys="+strconv.Itoa(n)+",expires="+strconv.Itoa(n)+",avg_ttl=0")
	} else {
		section("Keyspace")
	}
	if wanted("Policies") {
		section("Policies", policyFields(s.store.Policies())...)
	}
	var extra []string
	if s.cfg.Info != nil {
		m := s.cfg.Info()
		for _, k := range slices.Sorted(maps.Keys(m)) {
			extra = append(extra, oneLine(k), oneLine(m[k]))
		}
	}
	if len(extra) > 0 {
		section("Bucketd", extra...)
	}
	c.bulkString(b.String())
}

// policyFields returns the fields of INFO's Policies section: how many
// policies there are, the default's name, and a line per policy with its
// counts since the server started, as Redis's keyspace lines:
//
//	policy_free:allowed=120,denied=3,shadow=0
//
// denied counts the takes the policy's limits refused, including those a
// shadow policy allowed anyway.
func policyFields(ps []bucket.PolicyInfo) []string {
	def := ""
	for _, p := range ps {
		if p.Default {
			def = p.Name
		}
	}
	fields := make([]string, 0, 4+2*len(ps))
	fields = append(fields, "policies", strconv.Itoa(len(ps)), "default_policy", oneLine(def))
	for _, p := range ps {
		fields = append(fields, "policy_"+oneLine(p.Name),
			"allowed="+strconv.FormatUint(p.Allowed, 10)+
				",denied="+strconv.FormatUint(p.Denied, 10)+
				",shadow="+strconv.FormatInt(b2i(p.Shadow), 10))
	}
	return fields
}

// oneLine keeps an INFO field on its line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// counts returns the connected clients and the commands run so far.
func (s *Server) counts() (clients int, cmds uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmds = s.doneCmds.Load()
	for c := range s.clients {
		cmds += c.ncmds.Load()
	}
	return len(s.clients), cmds
}

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
			infos = c.s.store.Policies()
		}
		if matches(name) {
			var v string
			switch name {
			case "capacity", "rate", "default-policy":
				if pol == nil {
					p, err := c.s.store.Policy("")
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
		p, err := c.s.store.Policy("")
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
		if err := c.s.store.SetDefaultLimit(l); err != nil {
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

func cmdTime(c *conn, args [][]byte) {
	now := c.s.now()
	c.array(2)
	c.bulkInt(now.Unix())
	c.bulkInt(int64(now.Nanosecond() / 1000))
}

func cmdSave(c *conn, args [][]byte) {
	if c.s.saving.Load() {
		c.err("ERR Background save already in progress")
		return
	}
	if err := c.s.store.Save(); err != nil {
		c.writeError(err)
		return
	}
	c.ok()
}

// BGSAVE [SCHEDULE] saves on a goroutine that Shutdown waits for.
func cmdBgsave(c *conn, args [][]byte) {
	if len(args) > 2 || len(args) == 2 && !eqFold(args[1], "schedule") {
		c.syntaxErr()
		return
	}
	s := c.s
	if !s.saving.CompareAndSwap(false, true) {
		c.err("ERR Background save already in progress")
		return
	}
	s.wg.Add(1) // this connection is counted too, so Shutdown cannot have finished waiting
	go func() {
		defer s.wg.Done()
		defer s.saving.Store(false)
		err := s.store.Save()
		s.saveFailed.Store(err != nil)
		if err != nil {
			s.log.Error("respcompat: BGSAVE failed", "err", err)
		}
	}()
	c.status("Background saving started")
}

func cmdLastSave(c *conn, args [][]byte) { c.int(c.s.store.LastSave().Unix()) }

// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] calls Config.Shutdown and closes the
// connection without a reply, as Redis does. bucketd always writes every
// bucket to disk as it stops, so NOSAVE is accepted and changes nothing.
func cmdShutdown(c *conn, args [][]byte) {
	var save, nosave bool
	for _, a := range args[1:] {
		switch {
		case eqFold(a, "nosave"):
			nosave = true
		case eqFold(a, "save"):
			save = true
		case eqFold(a, "now"), eqFold(a, "force"):
		case eqFold(a, "abort"):
			c.err("ERR No shutdown in progress.")
			return
		default:
			c.syntaxErr()
			return
		}
	}
	if save && nosave {
		c.syntaxErr()
		return
	}
	if c.s.cfg.Shutdown == nil {
		c.err("ERR SHUTDOWN is disabled on this server")
		return
	}
	c.s.log.Info("respcompat: SHUTDOWN requested", "addr", c.addr)
	c.s.cfg.Shutdown()
	c.quit = true
}
