package respcompat

import (
	"errors"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// BUCKET.TAKE key [cost] [POLICY name]
//
// Takes cost tokens (a decimal, default 1; 0 peeks) from key's bucket under
// the server's policy name (default: the default policy, or the key's own),
// as GET /{key} does over HTTP. The reply is an array of six:
//
//	allowed         1 if the request may proceed, 0 if not. A shadow
//	                policy's request always may.
//	limit           the capacity, whole tokens, of the limit with the fewest
//	                tokens left
//	remaining       the tokens it has left after the take (before it if
//	                refused), whole tokens rounded down
//	retry_after_ms  0 if the take succeeded; else milliseconds until it
//	                would, rounded up, or -1 if cost is more than the
//	                capacity and no wait can help. A shadow policy's refused
//	                take shows here while allowed is 1.
//	reset_after_ms  milliseconds until every limit is full, rounded up
//	policy          the name of the policy that decided
func cmdTake(c *conn, args [][]byte) {
	cost := bucket.Token
	var policy string
	i := 2
	if i < len(args) && !eqFold(args[i], "policy") {
		t, err := bucket.ParseTokens(string(args[i]))
		if err != nil {
			c.err("ERR invalid cost: " + err.Error())
			return
		}
		cost = t
		i++
	}
	if i < len(args) {
		if !eqFold(args[i], "policy") || i+2 != len(args) {
			c.syntaxErr()
			return
		}
		policy = string(args[i+1])
	}
	start := c.timer()
	res, err := c.store.Take(string(args[1]), policy, cost)
	c.observe(frontRESP, res.Policy.Name, cost, res.Allowed, res.Policy.Shadow, err, start)
	if errors.Is(err, bucket.ErrUnknownPolicy) {
		c.err("ERR unknown policy '" + policy + "'")
		return
	}
	if err != nil {
		c.writeError(err)
		return
	}
	retry := int64(0)
	switch {
	case res.Allowed:
	case res.RetryAfter == bucket.Never:
		retry = -1
	default:
		retry = bucket.Ceil(res.RetryAfter, time.Millisecond)
	}
	c.array(6)
	c.int(b2i(res.Allowed || res.Policy.Shadow))
	c.int(res.Limit.Whole())
	c.int(res.Remaining.Whole())
	c.int(retry)
	c.int(bucket.Ceil(res.ResetAfter, time.Millisecond))
	c.bulkString(res.Policy.Name)
}
