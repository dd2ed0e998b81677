package server

import (
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// The rate-limit fields follow draft-ietf-httpapi-ratelimit-headers-10
// (27 September 2025). What this code relies on from it:
//
//   - §3: RateLimit-Policy is a non-empty List (RFC 9651) of quota policy
//     Items whose value MUST be a String; §4: RateLimit is a List of service
//     limit Items that identify the quota policy by the same String.
//   - §3.1.1: "q" (REQUIRED) is the quota, a non-negative Integer in quota
//     units; the default unit (§3.1.2) is "requests", so no "qu" is sent.
//   - §3.1.3: "w" is the window, a non-zero non-negative Integer of seconds;
//     sub-second precision is not supported.
//   - §4.1.1: "r" (REQUIRED) is the remaining quota, a non-negative Integer;
//     §4.1.2: "t" is the seconds until more quota is available, a
//     non-negative Integer (delay-seconds); a client MUST NOT assume all of
//     the quota is back at t, and Retry-After takes precedence (§7).
//   - §6: the fields may be sent with any status code, including 429.
//
// A token bucket is not a fixed window, so the mapping is this (doc.go):
// q = capacity in whole tokens rounded down; w = Limit.Window() (the time an
// empty bucket takes to fill) in seconds rounded up; r = remaining whole
// tokens rounded down; t = ResetAfter (until the bucket is full) in seconds
// rounded up. Rounding is always towards the cautious side. Every value
// fits the 15 digits of an Integer: at most 10^12 tokens (bucket.MaxTokens)
// and 9.3*10^9 seconds (the largest time.Duration).
//
// One known departure: §6 says a Retry-After SHOULD NOT point to a time
// earlier than t. With t the time until the bucket is full, a 429's
// Retry-After (the time until this cost fits) is usually earlier. Retry-After
// is the exact, actionable one, and §7 tells clients it takes precedence.

// appendPolicyField appends the RateLimit-Policy value for r: one item per
// limit when the policy has several, one named after the policy otherwise.
func appendPolicyField(b []byte, r *bucket.Result) []byte {
	limits := r.Policy.Limits
	if perLimit(r) {
		for i, l := range limits {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPolicyItem(b, r.Policy.Name, i+1, l.Capacity, l.Window())
		}
		return b
	}
	l, ok := decidingLimit(r)
	if !ok { // a limiter that sent no limits: the capacity is all we know
		return appendPolicyItem(b, r.Policy.Name, 0, r.Decision.Limit, 0)
	}
	return appendPolicyItem(b, r.Policy.Name, 0, l.Capacity, l.Window())
}

// appendLimitField appends the RateLimit value for r, with the same items as
// appendPolicyField.
func appendLimitField(b []byte, r *bucket.Result) []byte {
	if perLimit(r) {
		for i, d := range r.Limits {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendLimitItem(b, r.Policy.Name, i+1, d.Remaining, d.ResetAfter)
		}
		return b
	}
	return appendLimitItem(b, r.Policy.Name, 0, r.Decision.Remaining, r.Decision.ResetAfter)
}

// perLimit reports whether r is reported one item per limit.
func perLimit(r *bucket.Result) bool {
	return len(r.Policy.Limits) > 1 && len(r.Limits) == len(r.Policy.Limits)
}

// decidingLimit returns the limit that r.Decision describes: the only one,
// or, for a policy with several limits but no per-limit decisions, the
// first with the decision's capacity.
func decidingLimit(r *bucket.Result) (bucket.Limit, bool) {
	limits := r.Policy.Limits
	if len(limits) == 0 {
		return bucket.Limit{}, false
	}
	for _, l := range limits {
		if l.Capacity == r.Decision.Limit {
			return l, true
		}
	}
	return limits[0], true
}

// The items themselves are written by package bucket, which the RLS front
// shares (bucket/fields.go).
func appendPolicyItem(b []byte, name string, i int, capacity bucket.Tokens, window time.Duration) []byte {
	return bucket.AppendPolicyItem(b, name, i, capacity, window)
}

func appendLimitItem(b []byte, name string, i int, remaining bucket.Tokens, reset time.Duration) []byte {
	return bucket.AppendLimitItem(b, name, i, remaining, reset)
}

// ceilSeconds returns d in whole seconds rounded up (bucket.Ceil).
func ceilSeconds(d time.Duration) int64 { return bucket.Ceil(d, time.Second) }
