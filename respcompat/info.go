package respcompat

import (
	"fmt"
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

// INFO [section ...]: the sections server, clients, memory, stats, persistence,
// keyspace, policies and bucketd (Config.Info's fields), in Redis's format.
// No section, "default", "all" and "everything" give them all; "all",
// "everything" and "commandstats" give commandstats too (cmdstat_<name>:
// calls=N, the counts of Stats, "unknown" for unknown commands); an
// unknown section gives nothing.
func cmdInfo(c *conn, args [][]byte) {
	all := len(args) == 1
	everything := false // commandstats too, as Redis's "all"
	want := make(map[string]bool)
	for _, a := range args[1:] {
		switch s := strings.ToLower(string(a)); s {
		case "all", "everything":
			everything = true
			fallthrough
		case "default":
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
	if wanted("Memory") {
		section("Memory", s.memoryFields()...)
	}
	section("Stats",
		"total_connections_received", strconv.FormatUint(s.accepted.Load(), 10),
		"total_commands_processed", strconv.FormatUint(cmds, 10),
		"rejected_connections", strconv.FormatUint(s.rejected.Load(), 10),
		"evicted_keys", strconv.FormatUint(c.store.Evicted(), 10),
	)
	// The status of the last write of the data file, whoever made it
	// (BGSAVE, SAVE or the interval flush).
	status := "ok"
	if c.store.Ready() != nil {
		status = "err"
	}
	section("Persistence",
		"loading", "0",
		"rdb_bgsave_in_progress", strconv.FormatInt(b2i(s.saving.Load()), 10),
		"rdb_last_save_time", strconv.FormatInt(c.store.LastSave().Unix(), 10),
		"rdb_last_bgsave_status", status,
		"aof_enabled", "0",
	)
	if n, _ := c.store.Len(); n > 0 { // 0 once closed
		// Every bucket is forgotten once full: each "expires".
		section("Keyspace", "db0", "keys="+strconv.Itoa(n)+",expires="+strconv.Itoa(n)+",avg_ttl=0")
	} else {
		section("Keyspace")
	}
	if wanted("Policies") {
		cell := c.store.CellCounts()
		section("Policies", append(policyFields(c.store.Policies()),
			"cl_throttle", fmt.Sprintf("allowed=%d,denied=%d", cell.Allowed, cell.Denied))...)
	}
	if wanted("Top") {
		section("Top", topFields(s.store)...)
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
	if everything || want["commandstats"] {
		st := s.Stats()
		var fields []string
		for _, name := range slices.Sorted(maps.Keys(st.Commands)) {
			fields = append(fields, "cmdstat_"+name, "calls="+strconv.FormatUint(st.Commands[name], 10))
		}
		want["commandstats"] = true // for section
		section("Commandstats", fields...)
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
