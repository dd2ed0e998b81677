package respcompat

import (
	"strconv"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
)

// The hash commands: HGETALL, HGET, HMGET, HEXISTS, HSTRLEN, HLEN, HKEYS,
// HVALS, HSCAN, HSET and HMSET, on a bucket seen as a hash.

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
	"policy",        // the policy, or "(cl.throttle)" for CL.THROTTLE's bucket
}

// cellPolicy is the policy field of CL.THROTTLE's bucket: not a policy
// name, which cannot hold parentheses.
const cellPolicy = "(cl.throttle)"

const tokensField = 0 // the index of "tokens", the only field HSET sets

// hashView is a bucket's field values at one instant, in bucketFields'
// order.
type hashView [len(bucketFields)]string

func viewOf(v limiter.View) hashView {
	s := v.Snapshot
	l, d := shownLimit(s)
	policy := v.Policy
	if v.Cell {
		policy = cellPolicy
	}
	return hashView{
		d.Remaining.String(),
		l.Capacity.String(),
		l.Rate.String(),
		strconv.FormatInt(s.UpdatedAt.UnixMilli(), 10),
		strconv.FormatInt(bucket.Ceil(d.ResetAfter, time.Millisecond), 10),
		policy,
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
	s, ok, err := c.store.Inspect(string(key))
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
	if err := c.store.SetTokens(string(args[1]), tokens); err != nil {
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
