package bucket

import (
	"strconv"
	"time"
)

// The RateLimit and RateLimit-Policy fields of
// draft-ietf-httpapi-ratelimit-headers-10, as items, for every front that
// writes them (the HTTP front, and the RLS front's response_headers_to_add).
// The mapping of a token bucket to the draft's fields (server/headers.go
// explains it in full): q is the capacity in whole tokens rounded down; w
// the time an empty bucket takes to fill (Limit.Window) in seconds rounded
// up; r the remaining whole tokens rounded down; t the time until the
// bucket is full in seconds rounded up. Rounding is towards the cautious
// side.

// AppendPolicyItem appends the RateLimit-Policy item `"name";q=Q;w=W`, or
// `"name-i";...` when i > 0. w is left out when window is not positive.
func AppendPolicyItem(b []byte, name string, i int, capacity Tokens, window time.Duration) []byte {
	b = AppendItemName(b, name, i)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, max(capacity.Whole(), 0), 10)
	if window > 0 {
		b = append(b, ";w="...)
		b = strconv.AppendInt(b, Ceil(window, time.Second), 10) // >= 1, as §3.1.3 requires
	}
	return b
}

// AppendLimitItem appends the RateLimit item `"name";r=R;t=T`, or
// `"name-i";...` when i > 0.
func AppendLimitItem(b []byte, name string, i int, remaining Tokens, reset time.Duration) []byte {
	b = AppendItemName(b, name, i)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, max(remaining.Whole(), 0), 10)
	b = append(b, ";t="...)
	return strconv.AppendInt(b, Ceil(reset, time.Second), 10)
}

// AppendItemName appends name as a String (RFC 9651 §3.3.3), with "-i"
// when i > 0. A String holds only printable ASCII, with '"' and '\'
// escaped; any other byte is written as '?'. An empty name is
// DefaultPolicy.
func AppendItemName(b []byte, name string, i int) []byte {
	if name == "" {
		name = DefaultPolicy
	}
	b = append(b, '"')
	for len(name) > 0 {
		j := 0 // name[:j] needs no escape: append it in one go
		for j < len(name) && name[j] >= 0x20 && name[j] <= 0x7e && name[j] != '"' && name[j] != '\\' {
			j++
		}
		b = append(b, name[:j]...)
		if j == len(name) {
			break
		}
		if c := name[j]; c == '"' || c == '\\' {
			b = append(b, '\\', c)
		} else {
			b = append(b, '?')
		}
		name = name[j+1:]
	}
	if i > 0 {
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(i), 10)
	}
	return append(b, '"')
}
