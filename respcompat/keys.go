package respcompat

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/tidwall/match"
)

// A bucket is shown as a hash whose fields are computed when it is read.
// For a policy of several limits, the fields are those of the limit with
// the fewest tokens left (the first such, in the policy's order), the one
// that decides the next take.
var bucketFields = [...]string{
	"tokens",        // tokens held now, decimal: "14.5"
	"capacity",      // the most it holds: "15"
	"rate",          // the refill rate: "1/3s"
	"updated_at_ms", // when the bucket last changed, Unix milliseconds
	"full_in_ms",    // milliseconds until it is full, rounded up
	"policy",        // the policy it was last taken under
}

const tokensField = 0 // the index of "tokens", the only field HSET sets

// hashView is a bucket's field values at one instant, in bucketFields'
// order.
type hashView [len(bucketFields)]string

func viewOf(s bucket.Snapshot) hashView {
	l, d := shownLimit(s)
	return hashView{
		d.Remaining.String(),
		l.Capacity.String(),
		l.Rate.String(),
		strconv.FormatInt(s.UpdatedAt.UnixMilli(), 10),
		strconv.FormatInt(bucket.Ceil(d.ResetAfter, time.Millisecond), 10),
		s.Policy.Name,
	}
}

// shownLimit returns the limit whose fields a bucket shows, and its peek.
func shownLimit(s bucket.Snapshot) (bucket.Limit, bucket.Decision) {
	if len(s.Limits) < 2 || len(s.Limits) != len(s.Policy.Limits) {
		l := bucket.Limit{Capacity: s.Decision.Limit}
		if len(s.Policy.Limits) > 0 {
			l = s.Policy.Limits[0]
		}
		return l, s.Decision
	}
	i := 0
	for j, d := range s.Limits {
		if d.Remaining < s.Limits[i].Remaining {
			i = j
		}
	}
	return s.Policy.Limits[i], s.Limits[i]
}

// untilForgotten returns how long until every limit of the bucket is full,
// when the store may forget it.
func untilForgotten(s bucket.Snapshot) time.Duration {
	d := s.Decision.ResetAfter
	for _, l := range s.Limits {
		d = max(d, l.ResetAfter)
	}
	return d
}

func fieldIndex(name []byte) int {
	for i, f := range bucketFields {
		if string(name) == f {
			return i
		}
	}
	return -1
}

// peek returns key's bucket as a hash, ok == false if there is none, or
// writes the error and returns failed == true.
func (c *conn) peek(key []byte) (v hashView, ok, failed bool) {
	s, ok, err := c.s.store.Peek(string(key))
	if err != nil {
		c.writeError(err)
		return v, false, true
	}
	if !ok {
		return v, false, false
	}
	return viewOf(s), true, false
}

func cmdHgetall(c *conn, args [][]byte) {
	v, ok, failed := c.peek(args[1])
	switch {
	case failed:
	case !ok:
		c.array(0)
	default:
		c.array(2 * len(v))
		for i, f := range bucketFields {
			c.bulkString(f)
			c.bulkString(v[i])
		}
	}
}

func cmdHget(c *conn, args [][]byte) {
	v, ok, failed := c.peek(args[1])
	if failed {
		return
	}
	if i := fieldIndex(args[2]); ok && i >= 0 {
		c.bulkString(v[i])
		return
	}
	c.null()
}

func cmdHmget(c *conn, args [][]byte) {
	v, ok, failed := c.peek(args[1])
	if failed {
		return
	}
	c.array(len(args) - 2)
	for _, f := range args[2:] {
		if i := fieldIndex(f); ok && i >= 0 {
			c.bulkString(v[i])
		} else {
			c.null()
		}
	}
}

func cmdHexists(c *conn, args [][]byte) {
	_, ok, failed := c.peek(args[1])
	if failed {
		return
	}
	c.int(b2i(ok && fieldIndex(args[2]) >= 0))
}

func cmdHstrlen(c *conn, args [][]byte) {
	v, ok, failed := c.peek(args[1])
	if failed {
		return
	}
	if i := fieldIndex(args[2]); ok && i >= 0 {
		c.int(int64(len(v[i])))
		return
	}
	c.int(0)
}

func cmdHlen(c *conn, args [][]byte) {
	_, ok, failed := c.peek(args[1])
	if failed {
		return
	}
	if ok {
		c.int(int64(len(bucketFields)))
	} else {
		c.int(0)
	}
}

func cmdHkeys(c *conn, args [][]byte) {
	_, ok, failed := c.peek(args[1])
	if failed {
		return
	}
	if !ok {
		c.array(0)
		return
	}
	c.array(len(bucketFields))
	for _, f := range bucketFields {
		c.bulkString(f)
	}
}

func cmdHvals(c *conn, args [][]byte) {
	v, ok, failed := c.peek(args[1])
	if failed {
		return
	}
	if !ok {
		c.array(0)
		return
	}
	c.array(len(v))
	for _, s := range v {
		c.bulkString(s)
	}
}

// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]: a bucket has
// six fields, all returned at once with cursor 0.
func cmdHscan(c *conn, args [][]byte) {
	if _, ok := parseCursor(args[2]); !ok {
		c.err("ERR invalid cursor")
		return
	}
	o, ok := c.scanOptions(args[3:], false)
	if !ok {
		return
	}
	v, exists, failed := c.peek(args[1])
	if failed {
		return
	}
	var out []string
	if exists {
		for i, f := range bucketFields {
			if o.matches(f) {
				out = append(out, f)
				if !o.noValues {
					out = append(out, v[i])
				}
			}
		}
	}
	c.array(2)
	c.bulkString("0")
	c.array(len(out))
	for _, s := range out {
		c.bulkString(s)
	}
}

// HSET key field value [field value ...] sets the tokens a bucket holds
// now. Only "tokens" can be set; the reply is 0, as Redis replies for a
// field that already exists (every field of a bucket always does).
func cmdHset(c *conn, args [][]byte) {
	if c.setTokens(args, "hset") {
		c.int(0)
	}
}

// HMSET is HSET with Redis's older reply, OK.
func cmdHmset(c *conn, args [][]byte) {
	if c.setTokens(args, "hmset") {
		c.ok()
	}
}

func (c *conn) setTokens(args [][]byte, name string) bool {
	if len(args)%2 != 0 {
		c.arityErr(name)
		return false
	}
	var tokens bucket.Tokens
	for i := 2; i < len(args); i += 2 {
		switch fieldIndex(args[i]) {
		case tokensField:
		case -1:
			c.err("ERR unknown field '" + string(args[i]) + "': only 'tokens' can be set")
			return false
		default:
			c.err("ERR field '" + string(args[i]) + "' is read-only: only 'tokens' can be set")
			return false
		}
		t, ok := parseTokens(args[i+1])
		if !ok {
			c.err("ERR value is not a valid float")
			return false
		}
		tokens = t
	}
	if err := c.s.store.SetTokens(string(args[1]), tokens); err != nil {
		c.writeError(err)
		return false
	}
	return true
}

// parseTokens parses an amount of tokens for HSET: a decimal with up to six
// places. A negative amount is taken as 0, as the store clamps to
// [0, capacity] anyway.
func parseTokens(b []byte) (bucket.Tokens, bool) {
	neg := len(b) > 1 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	t, err := bucket.ParseTokens(string(b))
	if err != nil {
		return 0, false
	}
	if neg {
		return 0, true
	}
	return t, true
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// EXISTS key [key ...] counts the keys given that have a bucket, a key
// given twice counting twice, as in Redis.
func cmdExists(c *conn, args [][]byte) {
	var n int64
	for _, k := range args[1:] {
		_, ok, err := c.s.store.Peek(string(k))
		if err != nil {
			c.writeError(err)
			return
		}
		n += b2i(ok)
	}
	c.int(n)
}

func cmdType(c *conn, args [][]byte) {
	_, ok, err := c.s.store.Peek(string(args[1]))
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
	s, ok, err := c.s.store.Peek(string(key))
	switch {
	case err != nil:
		c.writeError(err)
	case !ok:
		c.int(-2)
	default:
		c.int(bucket.Ceil(untilForgotten(s), unit))
	}
}

func cmdDel(c *conn, args [][]byte) {
	keys := make([]string, len(args)-1)
	for i, k := range args[1:] {
		keys[i] = string(k)
	}
	n, err := c.s.store.Delete(keys...)
	if err != nil {
		c.writeError(err)
		return
	}
	c.int(int64(n))
}

// matchLimit bounds the work of one glob match, in steps per byte of the
// key, so that a pattern like "*a*a*a*a*b" cannot stall the server.
const matchLimit = 1000

// globMatch reports whether s matches the glob pattern: '*' any bytes, '?'
// one character, '\' escapes the next (tidwall/match, which redcon uses).
// Unlike Redis's glob it has no [...] classes: '[' matches itself.
func globMatch(s, pattern string) bool {
	if pattern == "*" {
		return true
	}
	ok, stopped := match.MatchLimit(s, pattern, matchLimit)
	return ok && !stopped
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
		batch, next, err := c.s.store.Scan(cursor, scanBatch)
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
	keys, next, err := c.s.store.Scan(cursor, o.count)
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

func cmdDBSize(c *conn, args [][]byte) { c.int(int64(c.s.store.Len())) }

// RANDOMKEY returns a key picked at random from the first batch of keys
// the store scans, so it is random only among those; nil with no buckets.
func cmdRandomKey(c *conn, args [][]byte) {
	var cursor uint64
	for {
		keys, next, err := c.s.store.Scan(cursor, 16)
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
	if err := c.s.store.FlushAll(); err != nil {
		c.writeError(err)
		return
	}
	c.ok()
}
