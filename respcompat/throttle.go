package respcompat

import (
	"math"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// CL.THROTTLE key max_burst count period [quantity]
//
// redis-cell's command (github.com/brandur/redis-cell), with its arguments,
// reply and error texts. Its GCRA with emission interval T = period/count
// and tolerance (max_burst+1)*T is a token bucket of max_burst+1 tokens
// that earns count tokens every period seconds, and the store's bucket
// maths answers it:
//
//	limited      0 allowed, 1 refused
//	limit        max_burst+1
//	remaining    whole tokens left after the take (before it, if refused)
//	retry_after  seconds until the take would succeed; -1 if allowed, or if
//	             quantity is more than limit and no wait can help
//	reset_after  seconds until the bucket is full
//
// Seconds are rounded up as redis-cell rounds them: up when the remainder
// is at least a millisecond. quantity (default 1) may be 0, to peek, or
// negative, to give tokens back (as redis-cell allows), never above the
// limit: redis-cell would report more remaining than the limit then.
//
// The two differ only where redis-cell loses precision: it truncates T to a
// nanosecond and divides in floating point microseconds, while the bucket
// maths is exact. redis-cell does not check signs; here a negative
// max_burst, count or period is an error.
func cmdThrottle(c *conn, args [][]byte) {
	q, msg := parseThrottle(args)
	if msg != "" {
		c.err(msg)
		return
	}
	start := c.timer()
	d, err := c.store.Throttle(string(args[1]), q.limit, q.cost)
	c.throttleReply(q, d, err, start)
}

// cellReq is a CL.THROTTLE's arguments, parsed.
type cellReq struct {
	limit    bucket.Limit
	cost     bucket.Tokens
	maxBurst int64
}

// parseThrottle parses a CL.THROTTLE's arguments (args[1] is the key), or
// returns the error to reply.
func parseThrottle(args [][]byte) (cellReq, string) {
	if len(args) != 5 && len(args) != 6 {
		return cellReq{}, cellPrefix + "Usage: cl.throttle <key> <max_burst> <count per period> <period> [<quantity>]"
	}
	v := [4]int64{3: 1} // max_burst, count, period, quantity
	for i, a := range args[2:] {
		n, ok := parseCellInt(a)
		if !ok {
			return cellReq{}, cellPrefix + "Couldn't parse as integer: " + string(a)
		}
		v[i] = n
	}
	maxBurst, count, period, quantity := v[0], v[1], v[2], v[3]
	l, msg := cellLimit(maxBurst, count, period)
	if msg != "" {
		return cellReq{}, cellPrefix + msg
	}
	// More than the capacity can never fit, and giving back more than it
	// fills the bucket: any amount beyond says so, without overflowing.
	cost := bucket.Tokens(max(min(quantity, maxBurst+2), -(maxBurst+2))) * bucket.Token
	return cellReq{limit: l, cost: cost, maxBurst: maxBurst}, ""
}

// throttleReply reports the take of q that started at start (c.timer) to
// the metrics and writes its reply.
func (c *conn) throttleReply(q cellReq, d bucket.Decision, err error, start time.Duration) {
	c.observe(frontCell, "", q.cost, d.Allowed, false, err, start)
	c.cellReply(q, d, err)
}

// cellReply writes the reply to the CL.THROTTLE q, decided d or failed
// with err.
func (c *conn) cellReply(q cellReq, d bucket.Decision, err error) {
	if err != nil {
		c.writeError(err)
		return
	}
	retry := int64(-1)
	if !d.Allowed && d.RetryAfter != bucket.Never {
		retry = cellSeconds(d.RetryAfter)
	}
	c.array(5)
	c.int(b2i(!d.Allowed))
	c.int(q.maxBurst + 1)
	c.int(d.Remaining.Whole())
	c.int(retry)
	c.int(cellSeconds(d.ResetAfter))
}

// cellPrefix starts every redis-cell error: its module replies
// "Cell error: " and the error, whose text starts "Store error: ".
const cellPrefix = "Cell error: Store error: "

// parseCellInt parses an integer as redis-cell does (Rust's i64 parse): an
// optional sign, then one or more digits, fitting in an int64.
func parseCellInt(b []byte) (int64, bool) {
	if len(b) > 0 && b[0] == '+' {
		b = b[1:]
		if len(b) > 0 && b[0] == '-' {
			return 0, false
		}
	}
	return parseDigits(b)
}

// parseDigits parses an optional '-' and one or more digits, leading zeros
// allowed, into an int64.
func parseDigits(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var u uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		if u > (math.MaxInt64+1)/10 {
			return 0, false
		}
		u = u*10 + uint64(ch-'0')
		if u > math.MaxInt64+1 {
			return 0, false
		}
	}
	if neg {
		if u == 0 {
			return 0, true
		}
		return -int64(u-1) - 1, true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// cellLimit returns the limit of max_burst, count and period, or the error
// text. redis-cell refuses a zero rate, which includes an emission interval
// that truncates to 0 ns.
func cellLimit(maxBurst, count, period int64) (bucket.Limit, string) {
	const maxPeriod = math.MaxInt64 / int64(time.Second)
	switch {
	case count == 0 || period == 0 || period > 0 && count > 0 && period <= maxPeriod && period*int64(time.Second) < count:
		return bucket.Limit{}, "Zero rates are not supported"
	case maxBurst < 0:
		return bucket.Limit{}, "max_burst must not be negative"
	case count < 0:
		return bucket.Limit{}, "count must not be negative"
	case period < 0:
		return bucket.Limit{}, "period must not be negative"
	case maxBurst >= int64(bucket.MaxTokens/bucket.Token):
		return bucket.Limit{}, "max_burst is more than the maximum of " + (bucket.MaxTokens - bucket.Token).String()
	case count > int64(bucket.MaxTokens/bucket.Token):
		return bucket.Limit{}, "count is more than the maximum of " + bucket.MaxTokens.String()
	case period > maxPeriod:
		return bucket.Limit{}, "period is more than the maximum of " + time.Duration(maxPeriod*int64(time.Second)).String()
	}
	l := bucket.Limit{
		Capacity: bucket.Tokens(maxBurst+1) * bucket.Token,
		Rate:     bucket.Rate{Tokens: bucket.Tokens(count) * bucket.Token, Per: time.Duration(period) * time.Second},
	}
	if err := l.Validate(); err != nil {
		return bucket.Limit{}, err.Error()
	}
	return l, ""
}

// cellSeconds converts d to whole seconds as redis-cell does: truncated,
// plus one if the remainder is at least a millisecond.
func cellSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second >= time.Millisecond {
		s++
	}
	return s
}
