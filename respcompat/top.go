package respcompat

import (
	"strconv"
	"strings"
	"time"

	"github.com/bucketd/bucketd/topk"
)

// TopLimited is what INFO's Top section needs of the limiter: the keys
// refused most over a recent window (package limiter implements it).
type TopLimited interface {
	// Top returns the limit keys refused most over the last window, most
	// first; Policy "" is CL.THROTTLE's. Counts are upper bounds, at most
	// Error above the truth.
	Top(window time.Duration, limit int) []topk.Entry
	// TopSpan returns the longest window Top answers for.
	TopSpan() time.Duration
}

// infoTopKeys is the number of keys INFO's Top section lists.
const infoTopKeys = 10

// topFields returns the fields of INFO's Top section: the window, in
// seconds (the longest the limiter keeps), the number of keys listed, and
// a line per key refused most over it, most first:
//
//	top_window_seconds:300
//	top_limited_keys:2
//	top_limited_0:key=user42,policy=free,count=1520,error=0
//	top_limited_1:key=bot,policy=cl.throttle,count=88,error=3
//
// policy is cl.throttle for CL.THROTTLE's buckets. count is an upper bound
// of the refusals, at most error above the truth. A key or policy with a
// character that would break the line (',', '=', '"', a space, a control
// character) is written as a Go-quoted string.
func topFields(l TopLimited) []string {
	span := l.TopSpan()
	top := l.Top(span, infoTopKeys)
	fields := make([]string, 0, 4+2*len(top))
	fields = append(fields,
		"top_window_seconds", strconv.FormatInt(int64(span/time.Second), 10),
		"top_limited_keys", strconv.Itoa(len(top)))
	for i, e := range top {
		policy := e.Policy
		if policy == "" {
			policy = "cl.throttle"
		}
		fields = append(fields, "top_limited_"+strconv.Itoa(i),
			"key="+infoValue(e.Key)+",policy="+infoValue(policy)+
				",count="+strconv.FormatUint(e.Count, 10)+",error="+strconv.FormatUint(e.Error, 10))
	}
	return fields
}

// infoValue returns s as is, or Go-quoted when a character of it would
// make a "k=v,k=v" field ambiguous or break its line.
func infoValue(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == ',' || r == '=' || r == '"' || r == 0x7f || !strconv.IsPrint(r)
	}) {
		return strconv.Quote(s)
	}
	return s
}
