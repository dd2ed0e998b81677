package respcompat

import (
	"errors"
	"strconv"

	"github.com/bucketd/bucketd/bucket"
	"github.com/tidwall/redcon"
)

// Replies. Each appends to the connection's output, written once the
// commands read together have run.

func (c *conn) ok()                 { c.out = append(c.out, "+OK\r\n"...) }
func (c *conn) status(s string)     { c.out = redcon.AppendString(c.out, s) }
func (c *conn) err(msg string)      { c.out = redcon.AppendError(c.out, msg) }
func (c *conn) int(n int64)         { c.out = redcon.AppendInt(c.out, n) }
func (c *conn) bulk(b []byte)       { c.out = redcon.AppendBulk(c.out, b) }
func (c *conn) bulkString(s string) { c.out = redcon.AppendBulkString(c.out, s) }
func (c *conn) array(n int)         { c.out = redcon.AppendArray(c.out, n) }
func (c *conn) null()               { c.out = redcon.AppendNull(c.out) }

func (c *conn) bulkInt(n int64) {
	var b [20]byte
	c.bulk(strconv.AppendInt(b[:0], n, 10))
}

func (c *conn) syntaxErr()               { c.err("ERR syntax error") }
func (c *conn) notInteger()              { c.err("ERR value is not an integer or out of range") }
func (c *conn) arityErr(fullname string) { c.err(arityMsg(fullname)) }

func arityMsg(fullname string) string {
	return "ERR wrong number of arguments for '" + fullname + "' command"
}

// writeError answers a command whose Store call failed: the one place a
// Store error becomes a reply. An error that is not the client's doing is
// also logged.
func (c *conn) writeError(err error) {
	switch {
	case errors.Is(err, bucket.ErrClosed):
		c.err("ERR the server is shutting down")
	case errors.Is(err, bucket.ErrInvalid), errors.Is(err, bucket.ErrUnknownPolicy):
		c.err("ERR " + err.Error())
	case errors.Is(err, bucket.ErrNotDurable):
		// As Redis refuses writes it cannot persist (stop-writes-on-bgsave-error).
		// The change was made in memory and stays made: a later write
		// carries it to the disk.
		c.s.log.Error("respcompat: a change could not be made durable", "addr", c.addr, "err", err)
		c.err("MISCONF the change was made but could not be written to the data file; it stays made and will be written when the disk recovers: " + err.Error())
	case errors.Is(err, bucket.ErrStoreUnavailable):
		c.err("ERR the store (Redis) is unreachable or slower than --store-timeout; nothing was taken")
	default:
		name := ""
		if cmd := c.last.Load(); cmd != nil {
			name = cmd.name
		}
		c.s.log.Error("respcompat: store failed", "cmd", name, "addr", c.addr, "err", err)
		c.err("ERR " + err.Error())
	}
}

// help writes a HELP reply: lines as simple strings, as Redis does.
func (c *conn) help(lines ...string) {
	c.array(len(lines))
	for _, l := range lines {
		c.status(l)
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
