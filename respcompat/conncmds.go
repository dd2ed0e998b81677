package respcompat

import (
	"crypto/subtle"
	"strconv"
	"strings"
)

// The connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT
// and COMMAND.

// redisVersion is the Redis version the server answers as (HELLO, INFO):
// the commands it implements behave as Redis 7.0's do.
const redisVersion = "7.0.0"

func cmdPing(c *conn, args [][]byte) {
	switch len(args) {
	case 1:
		c.status("PONG")
	case 2:
		c.bulk(args[1])
	default:
		c.arityErr("ping")
	}
}

func cmdEcho(c *conn, args [][]byte) { c.bulk(args[1]) }

func cmdQuit(c *conn, args [][]byte) {
	c.ok()
	c.quit = true
}

func cmdSelect(c *conn, args [][]byte) {
	n, ok := parseInt(args[1])
	switch {
	case !ok:
		c.notInteger()
	case n != 0:
		c.err("ERR DB index is out of range")
	default:
		c.ok()
	}
}

const (
	errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	errNoPass    = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
)

// AUTH [username] password. As in Redis 6+ with ACL users: "default", whose
// password is Config.RequirePass (none configured, it accepts any password,
// but the one-argument form is an error that points at the configuration),
// and, when Config.AdminToken is set, "admin", whose password is the token.
func cmdAuth(c *conn, args [][]byte) {
	var user, pass []byte
	switch len(args) {
	case 2:
		if c.s.cfg.RequirePass == "" {
			c.err(errNoPass)
			return
		}
		user, pass = []byte("default"), args[1]
	case 3:
		user, pass = args[1], args[2]
	default:
		c.syntaxErr()
		return
	}
	if !c.checkPass(user, pass) {
		c.err(errWrongPass)
		return
	}
	c.ok()
}

// checkPass reports whether user and pass are the credentials of the
// default user (Config.RequirePass) or, when Config.AdminToken is set, of
// the admin user, and on success authenticates the connection as that user.
func (c *conn) checkPass(user, pass []byte) bool {
	switch string(user) {
	case "default":
		want := c.s.cfg.RequirePass
		if want != "" && subtle.ConstantTimeCompare(pass, []byte(want)) != 1 {
			return false
		}
		c.authed, c.admin = true, false
		return true
	case "admin":
		want := c.s.cfg.AdminToken
		if want == "" || subtle.ConstantTimeCompare(pass, []byte(want)) != 1 {
			return false
		}
		c.authed, c.admin = true, true
		return true
	}
	return false
}

// HELLO [protover [AUTH username password] [SETNAME clientname]]. The
// server speaks RESP2 only: HELLO 3 is answered as Redis answers a protocol
// version it does not have, with NOPROTO, which go-redis v9 and Lettuce take
// as the signal to fall back to RESP2 and AUTH (redis-py sends HELLO only
// when asked for RESP3, and then gives up as it would with any RESP2-only
// server).
func cmdHello(c *conn, args [][]byte) {
	i := 1
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			c.err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			c.err("NOPROTO unsupported protocol version")
			return
		}
		i = 2
	}
	var user, pass, name []byte
	hasAuth, hasName := false, false
	for ; i < len(args); i++ {
		more := len(args) - 1 - i
		switch {
		case eqFold(args[i], "auth") && more >= 2:
			user, pass, hasAuth = args[i+1], args[i+2], true
			i += 2
		case eqFold(args[i], "setname") && more >= 1:
			name, hasName = args[i+1], true
			if !validName(name) {
				c.err("ERR Client names cannot contain spaces, newlines or special characters.")
				return
			}
			i++
		default:
			c.err("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
			return
		}
	}
	if hasAuth && !c.checkPass(user, pass) {
		c.err(errWrongPass)
		return
	}
	if !c.authed {
		c.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if hasName {
		c.setName(string(name))
	}
	c.array(14)
	c.bulkString("server")
	c.bulkString("redis")
	c.bulkString("version")
	c.bulkString(redisVersion)
	c.bulkString("proto")
	c.int(2)
	c.bulkString("id")
	c.int(int64(c.id))
	c.bulkString("mode")
	c.bulkString("standalone")
	c.bulkString("role")
	c.bulkString("master")
	c.bulkString("modules")
	c.array(0)
}

func (c *conn) setName(name string) {
	c.mu.Lock()
	c.name = name
	c.mu.Unlock()
}

var clientSubs = []subcommand{
	{"id", 2, func(c *conn, args [][]byte) { c.int(int64(c.id)) }},
	{"getname", 2, clientGetName},
	{"setname", 3, clientSetName},
	{"setinfo", 4, clientSetInfo},
	{"info", 2, func(c *conn, args [][]byte) { c.bulkString(c.info(c.s.now())) }},
	{"list", -2, clientList},
	{"help", 2, func(c *conn, args [][]byte) {
		c.help("CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GETNAME", "    Return the name of the current connection.",
			"ID", "    Return the ID of the current connection.",
			"INFO", "    Return information about the current client connection.",
			"LIST [TYPE normal|master|replica|pubsub] [ID <id> [<id> ...]]", "    Return information about client connections.",
			"SETINFO <option> <value>", "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
			"HELP", "    Print this help.")
	}},
}

func cmdClient(c *conn, args [][]byte) { c.dispatch("client", clientSubs, args) }

func clientGetName(c *conn, args [][]byte) {
	c.mu.Lock()
	name := c.name
	c.mu.Unlock()
	if name == "" {
		c.null()
		return
	}
	c.bulkString(name)
}

func clientSetName(c *conn, args [][]byte) {
	if !validName(args[2]) {
		c.err("ERR Client names cannot contain spaces, newlines or special characters.")
		return
	}
	c.setName(string(args[2]))
	c.ok()
}

// CLIENT SETINFO LIB-NAME|LIB-VER value, as in Redis 7.2 (go-redis v9 sends
// both on connecting).
func clientSetInfo(c *conn, args [][]byte) {
	var lib bool
	switch {
	case eqFold(args[2], "lib-name"):
		lib = true
	case eqFold(args[2], "lib-ver"):
	default:
		c.err("ERR Unrecognized option '" + string(args[2]) + "'")
		return
	}
	if !validName(args[3]) {
		c.err("ERR " + string(args[2]) + " cannot contain spaces, newlines or special characters.")
		return
	}
	c.mu.Lock()
	if lib {
		c.lib = string(args[3])
	} else {
		c.libVer = string(args[3])
	}
	c.mu.Unlock()
	c.ok()
}

// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]: every
// client is of type normal.
func clientList(c *conn, args [][]byte) {
	typeOK := true
	var ids map[uint64]bool
	for i := 2; i < len(args); {
		switch {
		case eqFold(args[i], "type") && i+1 < len(args):
			switch strings.ToLower(string(args[i+1])) {
			case "normal":
			case "master", "replica", "slave", "pubsub":
				typeOK = false
			default:
				c.err("ERR Unknown client type '" + string(args[i+1]) + "'")
				return
			}
			i += 2
		case eqFold(args[i], "id") && i+1 < len(args):
			ids = make(map[uint64]bool)
			for i++; i < len(args); i++ {
				id, err := strconv.ParseUint(string(args[i]), 10, 64)
				if err != nil || id == 0 {
					c.err("ERR Invalid client ID")
					return
				}
				ids[id] = true
			}
		default:
			c.syntaxErr()
			return
		}
	}
	var b strings.Builder
	if typeOK {
		now := c.s.now()
		for _, o := range c.s.clientsByID() {
			if ids == nil || ids[o.id] {
				b.WriteString(o.info(now))
			}
		}
	}
	c.bulkString(b.String())
}

var commandSubs = []subcommand{
	{"count", 2, func(c *conn, args [][]byte) { c.int(int64(len(c.s.list))) }},
	{"info", -2, commandInfo},
	{"docs", -2, commandDocs},
	{"list", -2, commandList},
	{"help", 2, func(c *conn, args [][]byte) {
		c.help("COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"(no subcommand)", "    Return details about all commands.",
			"COUNT", "    Return the total number of commands in this server.",
			"LIST", "    Return a list of all commands in this server.",
			"INFO [<command-name> ...]", "    Return details about multiple commands.",
			"DOCS [<command-name> ...]", "    Return documentation details about multiple commands.",
			"HELP", "    Print this help.")
	}},
}

func cmdCommand(c *conn, args [][]byte) {
	if len(args) == 1 {
		c.allCommandInfo()
		return
	}
	c.dispatch("command", commandSubs, args)
}

func (c *conn) allCommandInfo() {
	c.array(len(c.s.list))
	for _, cmd := range c.s.list {
		c.commandInfo(cmd)
	}
}

// COMMAND INFO [name ...]: nil for a name the server does not have.
func commandInfo(c *conn, args [][]byte) {
	if len(args) == 2 {
		c.allCommandInfo()
		return
	}
	c.array(len(args) - 2)
	for _, name := range args[2:] {
		if cmd := c.s.lookup(name); cmd != nil {
			c.commandInfo(cmd)
		} else {
			c.null()
		}
	}
}

// commandInfo writes cmd's entry of COMMAND in Redis 7's ten-element form.
func (c *conn) commandInfo(cmd *command) {
	c.array(10)
	c.bulkString(cmd.name)
	c.int(int64(cmd.arity))
	c.array(len(cmd.flags))
	for _, f := range cmd.flags {
		c.status(f)
	}
	c.int(int64(cmd.firstKey))
	c.int(int64(cmd.lastKey))
	c.int(int64(cmd.step))
	c.array(len(cmd.acl))
	for _, a := range cmd.acl {
		c.status(a)
	}
	c.array(0) // tips
	c.array(0) // key specs
	c.array(0) // subcommands
}

func commandList(c *conn, args [][]byte) {
	if len(args) > 2 {
		c.syntaxErr() // FILTERBY is not supported
		return
	}
	c.array(len(c.s.list))
	for _, cmd := range c.s.list {
		c.bulkString(cmd.name)
	}
}

// COMMAND DOCS [name ...]: a flat array of names and their docs, in the
// shape redis-cli 7 reads at startup for its help and hints. Unknown names
// are left out.
func commandDocs(c *conn, args [][]byte) {
	var cmds []*command
	if len(args) == 2 {
		cmds = c.s.list
	} else {
		for _, name := range args[2:] {
			if cmd := c.s.lookup(name); cmd != nil {
				cmds = append(cmds, cmd)
			}
		}
	}
	c.array(2 * len(cmds))
	for _, cmd := range cmds {
		c.bulkString(cmd.name)
		n := 8
		if len(cmd.doc.args) > 0 {
			n += 2
		}
		c.array(n)
		c.bulkString("summary")
		c.bulkString(cmd.doc.summary)
		c.bulkString("since")
		c.bulkString(cmd.doc.since)
		c.bulkString("group")
		c.bulkString(cmd.doc.group)
		c.bulkString("complexity")
		c.bulkString(cmd.doc.complexity)
		if len(cmd.doc.args) > 0 {
			c.bulkString("arguments")
			c.docArgs(cmd.doc.args)
		}
	}
}

func (c *conn) docArgs(args []docArg) {
	c.array(len(args))
	for _, a := range args {
		n := 4
		if a.token != "" {
			n += 2
		}
		if a.optional || a.multiple {
			n += 2
		}
		if len(a.sub) > 0 {
			n += 2
		}
		c.array(n)
		c.bulkString("name")
		c.bulkString(a.name)
		c.bulkString("type")
		c.bulkString(a.typ)
		if a.token != "" {
			c.bulkString("token")
			c.bulkString(a.token)
		}
		if a.optional || a.multiple {
			c.bulkString("flags")
			var flags []string
			if a.optional {
				flags = append(flags, "optional")
			}
			if a.multiple {
				flags = append(flags, "multiple")
			}
			c.array(len(flags))
			for _, f := range flags {
				c.status(f) // redis-cli asserts flags are status replies
			}
		}
		if len(a.sub) > 0 {
			c.bulkString("arguments")
			c.docArgs(a.sub)
		}
	}
}
