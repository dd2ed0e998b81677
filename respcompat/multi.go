package respcompat

// Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH, with Redis's
// replies. The commands queued between MULTI and EXEC run in one
// Limiter.Atomic call, which holds the locks of their keys (of every key
// when one of them works on the whole store): no other client, on any
// front, sees the state between them.

import (
	"errors"

	"github.com/bucketd/bucketd/limiter"
)

// maxQueuedBytes bounds what one transaction may queue: its arguments
// and queueOverhead bytes for each. A command past it is refused and the
// transaction aborted at EXEC, as for any error while queueing.
const (
	maxQueuedBytes = 16 << 20
	queueOverhead  = 32
)

// maxWatched bounds the keys one connection watches: at the bound, WATCH
// is refused (one WATCH may cross it by its own keys).
const maxWatched = 100_000

// txState is a connection's MULTI state and WATCH.
type txState struct {
	multi  bool           // between MULTI and EXEC or DISCARD
	dirty  bool           // a command was refused while queueing: EXEC aborts
	queued []queuedCmd    // copies of the commands queued
	bytes  int            // their size, counted as maxQueuedBytes says
	watch  *limiter.Watch // nil until the first WATCH
}

type queuedCmd struct {
	cmd  *command
	args [][]byte // copied: they outlive the read buffer
}

// reject writes a command's refusal and, inside MULTI, makes EXEC abort,
// as Redis's rejectCommand does.
func (c *conn) reject(msg string) {
	if c.tx.multi {
		c.tx.dirty = true
	}
	c.err(msg)
}

// queue queues cmd and its arguments, answering QUEUED.
func (c *conn) queue(cmd *command, args [][]byte) {
	size := queueOverhead
	for _, a := range args {
		size += len(a) + queueOverhead
	}
	if c.tx.bytes+size > maxQueuedBytes {
		c.reject("ERR transaction too large: its queued commands exceed 16 MiB")
		return
	}
	c.tx.bytes += size
	cp := make([][]byte, len(args))
	for i, a := range args {
		cp[i] = append([]byte(nil), a...)
	}
	c.tx.queued = append(c.tx.queued, queuedCmd{cmd, cp})
	c.status("QUEUED")
}

// endMulti leaves the MULTI state and unwatches every key, as EXEC and
// DISCARD do.
func (c *conn) endMulti() {
	c.tx.multi, c.tx.dirty = false, false
	c.tx.queued, c.tx.bytes = nil, 0
	if c.tx.watch != nil {
		c.tx.watch.Reset()
	}
}

func cmdMulti(c *conn, args [][]byte) {
	if c.tx.multi {
		c.err("ERR MULTI calls can not be nested")
		return
	}
	c.tx.multi = true
	c.ok()
}

func cmdDiscard(c *conn, args [][]byte) {
	if !c.tx.multi {
		c.err("ERR DISCARD without MULTI")
		return
	}
	c.endMulti()
	c.ok()
}

func cmdWatch(c *conn, args [][]byte) {
	if c.tx.multi {
		c.err("ERR WATCH inside MULTI is not allowed")
		return
	}
	if c.tx.watch == nil {
		c.tx.watch = c.s.store.NewWatch()
	}
	if c.tx.watch.Len() >= maxWatched {
		c.err("ERR too many watched keys: at most 100000 a connection")
		return
	}
	keys := make([]string, len(args)-1)
	for i, k := range args[1:] {
		keys[i] = string(k)
	}
	c.tx.watch.Add(keys...)
	c.ok()
}

func cmdUnwatch(c *conn, args [][]byte) {
	if c.tx.watch != nil {
		c.tx.watch.Reset()
	}
	c.ok()
}

// nullArray is RESP2's nil array, EXEC's reply when a watched key changed.
const nullArray = "*-1\r\n"

func cmdExec(c *conn, args [][]byte) {
	if !c.tx.multi {
		c.err("ERR EXEC without MULTI")
		return
	}
	if c.tx.dirty {
		c.endMulti()
		c.err("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	queued := c.tx.queued
	keys, all := txKeys(queued)
	start := len(c.out)
	overflow := false
	err := c.s.store.Atomic(keys, all, c.tx.watch, func(tx *limiter.Tx) error {
		c.store = tx
		defer func() { c.store = c.s.store }()
		c.array(len(queued))
		for _, q := range queued {
			c.last.Store(q.cmd)
			q.cmd.run(c, q.args)
			if c.s.nmon.Load() > 0 {
				c.s.feed(c, q.cmd, q.args)
			}
			// The locks are held: nothing is written to the client now.
			// Replies past the output limit are dropped and the client
			// disconnected afterwards, as Redis's client-output-buffer-limit.
			if len(c.out)-start > c.s.outLimit {
				overflow = true
				c.out = c.out[:start]
			}
		}
		return nil
	})
	c.endMulti()
	switch {
	case errors.Is(err, limiter.ErrWatchDirty):
		c.out = append(c.out, nullArray...)
	case err != nil:
		c.writeError(err)
	case overflow:
		c.out = c.out[:start]
		c.s.log.Warn("respcompat: a client's EXEC replies exceed the output limit; disconnecting it",
			"addr", c.addr, "limit", c.s.outLimit, "commands", len(queued))
		c.quit = true
	}
}

// lockFree are the keyless commands that read no bucket: a transaction
// that queues only these and commands with keys locks only those keys.
var lockFree = map[string]bool{
	"ping": true, "echo": true, "time": true, "command": true, "select": true,
	"client": true, "lastsave": true, "hello": true, "auth": true,
}

// txKeys returns the keys the queued commands name, as COMMAND GETKEYS
// would, and whether one of them works on the whole store.
func txKeys(queued []queuedCmd) (keys []string, all bool) {
	for _, q := range queued {
		cmd := q.cmd
		if cmd.firstKey == 0 {
			if !lockFree[cmd.name] {
				return nil, true
			}
			continue
		}
		last := cmd.lastKey
		if last < 0 {
			last += len(q.args)
		}
		for i := cmd.firstKey; i <= last && i < len(q.args); i += max(cmd.step, 1) {
			keys = append(keys, string(q.args[i]))
		}
	}
	return keys, false
}
