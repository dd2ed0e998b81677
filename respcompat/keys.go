package respcompat

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// The keyspace commands: EXISTS, TYPE, TTL, PTTL, DEL, UNLINK, KEYS, SCAN,
// DBSIZE, RANDOMKEY, FLUSHDB and FLUSHALL. Each counts a key while any of
// its buckets is not full.

// EXISTS key [key ...] counts the keys given that have a bucket, a key
// given twice counting twice, as in Redis.
func cmdExists(c *conn, args [][]byte) {
	var n int64
	for _, k := range args[1:] {
		_, ok, err := c.store.Inspect(string(k))
		if err != nil {
			c.writeError(err)
			return
		}
		n += b2i(ok)
	}
	c.int(n)
}

func cmdType(c *conn, args [][]byte) {
	_, ok, err := c.store.Inspect(string(args[1]))
	switch {
	case err != nil:
		c.writeError(err)
	case ok:
		c.status("hash")
	default:
		c.status("none")
	}
}

func cmdTTL(c *conn, args [][]byte)  { c.ttl(args[1], time.Second) }
func cmdPTTL(c *conn, args [][]byte) { c.ttl(args[1], time.Millisecond) }

// ttl replies the time until key's bucket is full, when the store may
// forget it, in unit rounded up; -2 if there is no bucket.
func (c *conn) ttl(key []byte, unit time.Duration) {
	s, ok, err := c.store.Inspect(string(key))
	switch {
	case err != nil:
		c.writeError(err)
	case !ok:
		c.int(-2)
	default:
		c.int(bucket.Ceil(untilForgotten(s.Snapshot), unit))
	}
}

func cmdDel(c *conn, args [][]byte) {
	keys := make([]string, len(args)-1)
	for i, k := range args[1:] {
		keys[i] = string(k)
	}
	n, err := c.store.Delete(keys...)
	if err != nil {
		c.writeError(err)
		return
	}
	c.int(int64(n))
}

// scanBatch is how many keys KEYS asks the store for at once.
const scanBatch = 1000

// KEYS pattern returns every key that matches, each once.
func cmdKeys(c *conn, args [][]byte) {
	pattern := string(args[1])
	seen := make(map[string]struct{})
	var keys []string
	var cursor uint64
	for {
		batch, next, err := c.store.Scan(cursor, scanBatch)
		if err != nil {
			c.writeError(err)
			return
		}
		for _, k := range batch {
			if _, dup := seen[k]; !dup && globMatch(k, pattern) {
				seen[k] = struct{}{}
				keys = append(keys, k)
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	c.array(len(keys))
	for _, k := range keys {
		c.bulkString(k)
	}
}

// scanOpts are the options of SCAN and HSCAN.
type scanOpts struct {
	pattern  string // "" matches everything
	count    int
	typ      string // SCAN TYPE; "" any
	noValues bool   // HSCAN NOVALUES
}

func (o scanOpts) matches(s string) bool {
	return o.pattern == "" || globMatch(s, o.pattern)
}

// maxScanCount caps the COUNT passed to the store: COUNT is only a hint.
const maxScanCount = 100_000

// scanOptions parses [MATCH pattern] [COUNT count] and, for SCAN,
// [TYPE type] or, for HSCAN, [NOVALUES], with Redis's errors. It writes the
// error and returns false on a bad option.
func (c *conn) scanOptions(args [][]byte, keyspace bool) (scanOpts, bool) {
	o := scanOpts{count: 10}
	for i := 0; i < len(args); {
		more := len(args) - i
		switch {
		case eqFold(args[i], "count") && more >= 2:
			n, ok := parseInt(args[i+1])
			if !ok {
				c.notInteger()
				return o, false
			}
			if n < 1 {
				c.syntaxErr()
				return o, false
			}
			o.count = int(min(n, maxScanCount))
			i += 2
		case eqFold(args[i], "match") && more >= 2:
			o.pattern = string(args[i+1])
			if o.pattern == "*" {
				o.pattern = ""
			}
			i += 2
		case keyspace && eqFold(args[i], "type") && more >= 2:
			o.typ = string(args[i+1])
			i += 2
		case !keyspace && eqFold(args[i], "novalues"):
			o.noValues = true
			i++
		default:
			c.syntaxErr()
			return o, false
		}
	}
	return o, true
}

func parseCursor(b []byte) (uint64, bool) {
	n, err := strconv.ParseUint(string(b), 10, 64)
	return n, err == nil
}

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: the cursor is the
// store's; MATCH and TYPE filter each batch after it is read, as in Redis,
// so a batch may come back empty with a cursor to go on from. Every key is
// a hash: TYPE anything else matches none.
func cmdScan(c *conn, args [][]byte) {
	cursor, ok := parseCursor(args[1])
	if !ok {
		c.err("ERR invalid cursor")
		return
	}
	o, ok := c.scanOptions(args[2:], true)
	if !ok {
		return
	}
	keys, next, err := c.store.Scan(cursor, o.count)
	if err != nil {
		c.writeError(err)
		return
	}
	out := keys[:0:0]
	if o.typ == "" || eqFold([]byte(o.typ), "hash") {
		for _, k := range keys {
			if o.matches(k) {
				out = append(out, k)
			}
		}
	}
	c.array(2)
	var b [20]byte
	c.bulk(strconv.AppendUint(b[:0], next, 10))
	c.array(len(out))
	for _, k := range out {
		c.bulkString(k)
	}
}

func cmdDBSize(c *conn, args [][]byte) {
	n, err := c.store.Len()
	if err != nil {
		c.writeError(err)
		return
	}
	c.int(int64(n))
}

// RANDOMKEY returns a key picked at random from the first batch of keys
// the store scans, so it is random only among those; nil with no buckets.
func cmdRandomKey(c *conn, args [][]byte) {
	var cursor uint64
	for {
		keys, next, err := c.store.Scan(cursor, 16)
		if err != nil {
			c.writeError(err)
			return
		}
		if len(keys) > 0 {
			c.bulkString(keys[rand.IntN(len(keys))])
			return
		}
		if next == 0 {
			c.null()
			return
		}
		cursor = next
	}
}

// FLUSHDB and FLUSHALL [ASYNC|SYNC] forget every bucket; both modes do it
// at once.
func cmdFlush(c *conn, args [][]byte) {
	if len(args) > 2 || len(args) == 2 && !eqFold(args[1], "async") && !eqFold(args[1], "sync") {
		c.syntaxErr()
		return
	}
	if err := c.store.FlushAll(); err != nil {
		c.writeError(err)
		return
	}
	c.ok()
}
