package respcompat

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// command is one command of the table: what COMMAND says of it, and its
// handler.
type command struct {
	name  string // lower case, as errors and COMMAND show it
	arity int    // as Redis: n means exactly n words (the name included), -n at least n
	flags []string
	// firstKey, lastKey and step locate the keys, as COMMAND reports them
	// (lastKey -1: the last argument).
	firstKey, lastKey, step int
	acl                     []string // ACL categories, shown by COMMAND
	noAuth                  bool     // may run before AUTH
	txCtl                   bool     // runs at once inside MULTI: MULTI, EXEC, DISCARD, WATCH, UNWATCH, QUIT
	noMulti                 bool     // refused inside MULTI
	admin                   bool     // only the admin user may run it when Config.AdminToken is set
	// run handles the command. args[0] is the command name as sent; every
	// argument aliases the connection's read buffer and is valid only until
	// run returns: copy (string(arg)) what must outlive it.
	run func(c *conn, args [][]byte)
	doc doc

	calls atomic.Uint64 // times run (Stats)
}

// doc is what COMMAND DOCS says of a command (redis-cli's help and hints).
type doc struct {
	summary, since, group, complexity string
	args                              []docArg
}

// docArg describes one argument in COMMAND DOCS.
type docArg struct {
	name, typ, token   string
	optional, multiple bool
	sub                []docArg // of a "oneof" or "block"
}

func arg(name, typ string) docArg { return docArg{name: name, typ: typ} }
func key() docArg                 { return arg("key", "key") }
func opt(a docArg) docArg         { a.optional = true; return a }
func many(a docArg) docArg        { a.multiple = true; return a }
func tok(token string, a docArg) docArg {
	a.token = token
	return a
}
func pure(token string) docArg {
	return docArg{name: strings.ToLower(token), typ: "pure-token", token: token}
}
func oneof(name string, alts ...docArg) docArg {
	return docArg{name: name, typ: "oneof", sub: alts}
}
func block(name string, parts ...docArg) docArg {
	return docArg{name: name, typ: "block", sub: parts}
}

// maxNameLen is the longest command name; longer ones are unknown.
const maxNameLen = 16

// commandTable returns every command, sorted by name.
func commandTable() []*command {
	cmds := []*command{
		// Rate limiting.
		{name: "cl.throttle", arity: -1, flags: []string{"write"}, firstKey: 1, lastKey: 1, step: 1, run: cmdThrottle,
			doc: doc{"Take from a bucket under a limit given with the call, as redis-cell does. Replies [limited, limit, remaining, retry_after_s, reset_after_s].", "1.0.0", "bucketd", "O(1)",
				[]docArg{key(), arg("max_burst", "integer"), arg("count", "integer"), arg("period", "integer"), opt(arg("quantity", "integer"))}}},
		{name: "bucket.take", arity: -2, flags: []string{"write"}, firstKey: 1, lastKey: 1, step: 1, run: cmdTake,
			doc: doc{"Take from a bucket under one of the server's policies, as GET /{key} does. Replies [allowed, limit, remaining, retry_after_ms, reset_after_ms, policy].", "1.0.0", "bucketd", "O(number of limits)",
				[]docArg{key(), opt(arg("cost", "string")), opt(tok("POLICY", arg("policy", "string")))}}},

		// Buckets seen as hashes.
		{name: "hgetall", arity: 2, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash"}, run: cmdHgetall,
			doc: doc{"Returns a bucket's fields and their values now.", "2.0.0", "hash", "O(1)", []docArg{key()}}},
		{name: "hget", arity: 3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash", "@fast"}, run: cmdHget,
			doc: doc{"Returns the value of a field of a bucket now.", "2.0.0", "hash", "O(1)", []docArg{key(), arg("field", "string")}}},
		{name: "hmget", arity: -3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash", "@fast"}, run: cmdHmget,
			doc: doc{"Returns the values of fields of a bucket now.", "2.0.0", "hash", "O(N)", []docArg{key(), many(arg("field", "string"))}}},
		{name: "hexists", arity: 3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash", "@fast"}, run: cmdHexists,
			doc: doc{"Determines whether a field exists in a bucket.", "2.0.0", "hash", "O(1)", []docArg{key(), arg("field", "string")}}},
		{name: "hlen", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash", "@fast"}, run: cmdHlen,
			doc: doc{"Returns the number of fields of a bucket (0 if there is none).", "2.0.0", "hash", "O(1)", []docArg{key()}}},
		{name: "hkeys", arity: 2, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash"}, run: cmdHkeys,
			doc: doc{"Returns the field names of a bucket.", "2.0.0", "hash", "O(1)", []docArg{key()}}},
		{name: "hvals", arity: 2, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash"}, run: cmdHvals,
			doc: doc{"Returns the field values of a bucket now.", "2.0.0", "hash", "O(1)", []docArg{key()}}},
		{name: "hstrlen", arity: 3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash", "@fast"}, run: cmdHstrlen,
			doc: doc{"Returns the length of the value of a field of a bucket.", "3.2.0", "hash", "O(1)", []docArg{key(), arg("field", "string")}}},
		{name: "hscan", arity: -3, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@read", "@hash"}, run: cmdHscan,
			doc: doc{"Iterates over the fields and values of a bucket (all in one call).", "2.8.0", "hash", "O(1)",
				[]docArg{key(), arg("cursor", "integer"), opt(tok("MATCH", arg("pattern", "pattern"))), opt(tok("COUNT", arg("count", "integer"))), opt(pure("NOVALUES"))}}},
		{name: "hset", arity: -4, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@write", "@hash", "@fast"}, admin: true, run: cmdHset,
			doc: doc{"Sets the tokens a bucket holds now (only the tokens field can be set). Replies 0.", "2.0.0", "hash", "O(1)",
				[]docArg{key(), many(block("data", arg("field", "string"), arg("value", "string")))}}},
		{name: "hmset", arity: -4, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@write", "@hash", "@fast"}, admin: true, run: cmdHmset,
			doc: doc{"Sets the tokens a bucket holds now, as HSET, replying OK.", "2.0.0", "hash", "O(1)",
				[]docArg{key(), many(block("data", arg("field", "string"), arg("value", "string")))}}},

		// Keys.
		{name: "exists", arity: -2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: -1, step: 1, acl: []string{"@keyspace", "@read", "@fast"}, run: cmdExists,
			doc: doc{"Determines whether buckets exist; counts each key given.", "1.0.0", "generic", "O(N)", []docArg{many(key())}}},
		{name: "type", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@keyspace", "@read", "@fast"}, run: cmdType,
			doc: doc{"Returns hash for a bucket, none for an absent key.", "1.0.0", "generic", "O(1)", []docArg{key()}}},
		{name: "ttl", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@keyspace", "@read", "@fast"}, run: cmdTTL,
			doc: doc{"Returns the seconds until a bucket is full and forgotten, rounded up (-2 if there is none).", "1.0.0", "generic", "O(1)", []docArg{key()}}},
		{name: "pttl", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, acl: []string{"@keyspace", "@read", "@fast"}, run: cmdPTTL,
			doc: doc{"Returns the milliseconds until a bucket is full and forgotten, rounded up (-2 if there is none).", "2.6.0", "generic", "O(1)", []docArg{key()}}},
		{name: "del", arity: -2, flags: []string{"write"}, firstKey: 1, lastKey: -1, step: 1, acl: []string{"@keyspace", "@write", "@slow"}, admin: true, run: cmdDel,
			doc: doc{"Resets buckets to full by forgetting them. Replies how many existed.", "1.0.0", "generic", "O(N)", []docArg{many(key())}}},
		{name: "unlink", arity: -2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: -1, step: 1, acl: []string{"@keyspace", "@write", "@fast"}, admin: true, run: cmdDel,
			doc: doc{"Resets buckets to full by forgetting them, as DEL.", "4.0.0", "generic", "O(N)", []docArg{many(key())}}},
		{name: "keys", arity: 2, flags: []string{"readonly"}, acl: []string{"@keyspace", "@read", "@slow", "@dangerous"}, run: cmdKeys,
			doc: doc{"Returns the keys of all buckets that match a glob pattern.", "1.0.0", "generic", "O(N)", []docArg{arg("pattern", "pattern")}}},
		{name: "scan", arity: -2, flags: []string{"readonly"}, acl: []string{"@keyspace", "@read", "@slow"}, run: cmdScan,
			doc: doc{"Iterates over the keys of the buckets.", "2.8.0", "generic", "O(1) for every call. O(N) for a complete iteration.",
				[]docArg{arg("cursor", "integer"), opt(tok("MATCH", arg("pattern", "pattern"))), opt(tok("COUNT", arg("count", "integer"))), opt(tok("TYPE", arg("type", "string")))}}},
		{name: "dbsize", arity: 1, flags: []string{"readonly", "fast"}, acl: []string{"@keyspace", "@read", "@fast"}, run: cmdDBSize,
			doc: doc{"Returns the number of buckets.", "1.0.0", "server", "O(1)", nil}},
		{name: "randomkey", arity: 1, flags: []string{"readonly"}, acl: []string{"@keyspace", "@read", "@slow"}, run: cmdRandomKey,
			doc: doc{"Returns the key of a bucket (nil if there is none).", "1.0.0", "generic", "O(1)", nil}},
		{name: "flushdb", arity: -1, flags: []string{"write"}, acl: []string{"@keyspace", "@write", "@slow", "@dangerous"}, admin: true, run: cmdFlush,
			doc: doc{"Resets every bucket to full by forgetting it.", "1.0.0", "server", "O(N)", []docArg{opt(oneof("flush-type", pure("ASYNC"), pure("SYNC")))}}},
		{name: "flushall", arity: -1, flags: []string{"write"}, acl: []string{"@keyspace", "@write", "@slow", "@dangerous"}, admin: true, run: cmdFlush,
			doc: doc{"Resets every bucket to full by forgetting it, as FLUSHDB.", "1.0.0", "server", "O(N)", []docArg{opt(oneof("flush-type", pure("ASYNC"), pure("SYNC")))}}},

		// Connection.
		{name: "ping", arity: -1, flags: []string{"fast"}, acl: []string{"@fast", "@connection"}, run: cmdPing,
			doc: doc{"Returns PONG, or the message given.", "1.0.0", "connection", "O(1)", []docArg{opt(arg("message", "string"))}}},
		{name: "echo", arity: 2, flags: []string{"fast"}, acl: []string{"@fast", "@connection"}, run: cmdEcho,
			doc: doc{"Returns the message given.", "1.0.0", "connection", "O(1)", []docArg{arg("message", "string")}}},
		{name: "auth", arity: -2, flags: []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, acl: []string{"@fast", "@connection"}, noAuth: true, run: cmdAuth,
			doc: doc{"Authenticates the connection.", "1.0.0", "connection", "O(N)", []docArg{opt(arg("username", "string")), arg("password", "string")}}},
		{name: "hello", arity: -1, flags: []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, acl: []string{"@fast", "@connection"}, noAuth: true, run: cmdHello,
			doc: doc{"Handshakes with the server: RESP2 only (HELLO 3 is refused with NOPROTO).", "6.0.0", "connection", "O(1)",
				[]docArg{opt(block("arguments", arg("protover", "integer"), opt(tok("AUTH", block("auth", arg("username", "string"), arg("password", "string")))), opt(tok("SETNAME", arg("clientname", "string")))))}}},
		{name: "select", arity: 2, flags: []string{"loading", "stale", "fast"}, acl: []string{"@fast", "@connection"}, run: cmdSelect,
			doc: doc{"Selects a database: only 0 exists.", "1.0.0", "connection", "O(1)", []docArg{arg("index", "integer")}}},
		{name: "quit", arity: -1, flags: []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, acl: []string{"@fast", "@connection"}, noAuth: true, txCtl: true, run: cmdQuit,
			doc: doc{"Closes the connection.", "1.0.0", "connection", "O(1)", nil}},
		{name: "client", arity: -2, flags: []string{"noscript", "loading", "stale"}, acl: []string{"@slow", "@connection"}, run: cmdClient,
			doc: doc{"A container for client connection commands: ID, GETNAME, SETNAME, SETINFO, INFO, LIST, HELP.", "2.4.0", "connection", "Depends on subcommand.", nil}},

		// Transactions.
		{name: "multi", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, acl: []string{"@fast", "@transaction"}, txCtl: true, run: cmdMulti,
			doc: doc{"Starts a transaction.", "1.2.0", "transactions", "O(1)", nil}},
		{name: "exec", arity: 1, flags: []string{"noscript", "loading", "stale", "skip_slowlog"}, acl: []string{"@slow", "@transaction"}, txCtl: true, run: cmdExec,
			doc: doc{"Runs the commands queued since MULTI as one atomic step.", "1.2.0", "transactions", "Depends on commands in the transaction", nil}},
		{name: "discard", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, acl: []string{"@fast", "@transaction"}, txCtl: true, run: cmdDiscard,
			doc: doc{"Discards a transaction.", "2.0.0", "transactions", "O(N), when N is the number of queued commands", nil}},
		{name: "watch", arity: -2, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, firstKey: 1, lastKey: -1, step: 1, acl: []string{"@fast", "@transaction"}, txCtl: true, run: cmdWatch,
			doc: doc{"Monitors changes to buckets to determine the execution of a transaction.", "2.2.0", "transactions", "O(1) for every key.", []docArg{many(key())}}},
		{name: "unwatch", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, acl: []string{"@fast", "@transaction"}, txCtl: true, run: cmdUnwatch,
			doc: doc{"Forgets about watched keys of a transaction.", "2.2.0", "transactions", "O(1)", nil}},

		// Server.
		{name: "monitor", arity: 1, flags: []string{"admin", "noscript", "loading", "stale"}, acl: []string{"@admin", "@slow", "@dangerous"}, admin: true, noMulti: true, run: cmdMonitor,
			doc: doc{"Listens for all commands received by the server in real time.", "1.0.0", "server", "", nil}},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, acl: []string{"@slow", "@connection"}, run: cmdCommand,
			doc: doc{"Returns detailed information about all commands; COUNT, DOCS, INFO, LIST, HELP.", "2.8.13", "server", "O(N)", nil}},
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, acl: []string{"@slow", "@dangerous"}, run: cmdInfo,
			doc: doc{"Returns information and statistics about the server.", "1.0.0", "server", "O(1)", []docArg{opt(many(arg("section", "string")))}}},
		{name: "config", arity: -2, flags: []string{"noscript", "loading", "stale"}, acl: []string{"@slow"}, run: cmdConfig,
			doc: doc{"A container for server configuration commands: GET, SET, RESETSTAT, REWRITE, HELP.", "2.0.0", "server", "Depends on subcommand.", nil}},
		{name: "time", arity: 1, flags: []string{"loading", "stale", "fast"}, acl: []string{"@fast"}, run: cmdTime,
			doc: doc{"Returns the server time.", "2.6.0", "server", "O(1)", nil}},
		{name: "save", arity: 1, flags: []string{"admin", "noscript"}, acl: []string{"@admin", "@slow", "@dangerous"}, admin: true, run: cmdSave,
			doc: doc{"Writes every bucket to disk now.", "1.0.0", "server", "O(N)", nil}},
		{name: "bgsave", arity: -1, flags: []string{"admin", "noscript"}, acl: []string{"@admin", "@slow", "@dangerous"}, admin: true, run: cmdBgsave,
			doc: doc{"Writes every bucket to disk in the background.", "1.0.0", "server", "O(1)", []docArg{opt(pure("SCHEDULE"))}}},
		{name: "lastsave", arity: 1, flags: []string{"loading", "stale", "fast"}, acl: []string{"@fast", "@dangerous"}, run: cmdLastSave,
			doc: doc{"Returns the Unix time of the last write to disk.", "1.0.0", "server", "O(1)", nil}},
		{name: "shutdown", arity: -1, flags: []string{"admin", "noscript", "loading", "stale", "no_multi", "allow_busy"}, acl: []string{"@admin", "@slow", "@dangerous"}, noMulti: true, admin: true, run: cmdShutdown,
			doc: doc{"Stops the server, which always writes every bucket to disk first (NOSAVE is accepted and ignored).", "1.0.0", "server", "O(N)",
				[]docArg{opt(oneof("save-selector", pure("NOSAVE"), pure("SAVE"))), opt(pure("NOW")), opt(pure("FORCE"))}}},
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

// lookup finds the command named name, in any case, without allocating.
func (s *Server) lookup(name []byte) *command {
	var low [maxNameLen]byte
	if len(name) > len(low) {
		return nil
	}
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		low[i] = ch
	}
	return s.cmds[string(low[:len(name)])]
}

// exec runs one command, or queues it inside MULTI, checking its name,
// arity and the authentication in Redis's order.
func (c *conn) exec(args [][]byte) {
	cmd := c.s.lookup(args[0])
	if cmd == nil {
		c.s.unknown.Add(1)
	} else {
		cmd.calls.Add(1)
	}
	if c.logging = c.s.log.Enabled(context.Background(), c.s.accessLvl); c.logging && cmd != nil {
		c.decision = ""
		defer c.accessLog(cmd, args, time.Now())
	}
	switch {
	case cmd == nil:
		c.reject(unknownCommand(args))
	case cmd.arity > 0 && len(args) != cmd.arity, cmd.arity < 0 && len(args) < -cmd.arity:
		c.reject(arityMsg(cmd.name))
	case !c.authed && !cmd.noAuth:
		c.reject("NOAUTH Authentication required.")
	case c.s.cfg.AdminToken != "" && !c.admin && adminOnly(cmd, args) != "":
		c.reject("NOPERM this user has no permissions to run the '" + adminOnly(cmd, args) + "' command")
	case c.tx.multi && cmd.noMulti:
		c.reject("ERR Command not allowed inside a transaction")
	case c.tx.multi && !cmd.txCtl:
		c.queue(cmd, args)
		c.publish()
	default:
		c.last.Store(cmd)
		cmd.run(c, args)
		if cmd.txCtl || cmd.noAuth || cmd.name == "monitor" {
			c.publish() // the session may have changed: CLIENT LIST shows it
		}
		if c.s.nmon.Load() > 0 {
			c.s.feed(c, cmd, args)
		}
	}
}

// adminSubs are the subcommands only the admin user may run.
var adminSubs = map[string]bool{"config|set": true, "config|resetstat": true, "config|rewrite": true}

// adminOnly returns the name, as NOPERM quotes it, of what in args only the
// admin user may run, or "".
func adminOnly(cmd *command, args [][]byte) string {
	if cmd.admin {
		return cmd.name
	}
	if len(args) >= 2 && len(args[1]) <= maxNameLen {
		if full := cmd.name + "|" + strings.ToLower(string(args[1])); adminSubs[full] {
			return full
		}
	}
	return ""
}

// unknownCommand returns Redis's error for an unknown command, which quotes
// the first 128 bytes of its arguments.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(args[0][:min(len(args[0]), 128)])
	b.WriteString("', with args beginning with: ")
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		a = a[:min(len(a), 128-n)]
		b.WriteByte('\'')
		b.Write(a)
		b.WriteString("' ")
		n += len(a) + 3
	}
	return b.String()
}

// subcommand is one subcommand of CLIENT, CONFIG or COMMAND.
type subcommand struct {
	name  string // lower case
	arity int    // as command.arity, counting the command and subcommand names
	run   func(c *conn, args [][]byte)
}

// dispatch runs the subcommand named by args[1], with Redis's errors for an
// unknown one or a wrong number of arguments.
func (c *conn) dispatch(parent string, subs []subcommand, args [][]byte) {
	for _, sc := range subs {
		if !eqFold(args[1], sc.name) {
			continue
		}
		if sc.arity > 0 && len(args) != sc.arity || sc.arity < 0 && len(args) < -sc.arity {
			c.arityErr(parent + "|" + sc.name)
			return
		}
		sc.run(c, args)
		return
	}
	name := args[1][:min(len(args[1]), 128)]
	c.err("ERR unknown subcommand '" + string(name) + "'. Try " + strings.ToUpper(parent) + " HELP.")
}

// Arguments.

// eqFold reports whether b is lower, ignoring ASCII case; lower must be in
// lower case.
func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}

// parseInt parses a decimal integer as Redis's string2ll does: an optional
// '-', then digits with no leading zero, fitting in an int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 1 && b[0] == '0' || neg && b[0] == '0' {
		return 0, false
	}
	var u uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		d := uint64(ch - '0')
		if u > (1<<63)/10 || u*10 > 1<<63-d {
			return 0, false
		}
		u = u*10 + d
	}
	if neg {
		return -int64(u-1) - 1, true // allows -2^63
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// validName reports whether a client name or library attribute is made of
// printable ASCII other than space, as Redis requires.
func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}
