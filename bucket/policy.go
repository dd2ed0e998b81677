package bucket

import (
	"fmt"
	"time"
)

// Policy is a named set of limits that every take must pass together: a
// per-second burst and a daily quota on the same key, say. The zero value is
// invalid; see Validate.
type Policy struct {
	Name   string  // how clients and headers name the policy, e.g. "default"
	Limits []Limit // one or more; a take must fit every one
	// Shadow, when true, asks the caller to allow every request whatever the
	// decision says: the decision is still computed, to be counted and
	// logged, so a new limit can be rolled out safely.
	Shadow bool
	// OnStoreError is what a take does when the store is unavailable;
	// FailDefault follows the server's setting.
	OnStoreError FailMode
}

// MaxLimits is the most limits a policy may have.
const MaxLimits = 16

// Validate reports whether p is usable: a name, and from one to MaxLimits
// valid limits. The error wraps ErrInvalid.
func (p Policy) Validate() error {
	if p.Name == "" {
		return invalidf("policy has no name")
	}
	if len(p.Limits) == 0 {
		return invalidf("policy %q has no limits", p.Name)
	}
	if len(p.Limits) > MaxLimits {
		return invalidf("policy %q has %d limits, more than the maximum of %d", p.Name, len(p.Limits), MaxLimits)
	}
	for i, l := range p.Limits {
		if err := l.Validate(); err != nil {
			return &invalidError{msg: fmt.Sprintf("policy %q limit %d: %v", p.Name, i+1, err)}
		}
	}
	return nil
}

// Capacity returns the smallest capacity of p's limits: the largest cost a
// take could ever be allowed.
func (p Policy) Capacity() Tokens {
	c := MaxTokens
	for _, l := range p.Limits {
		c = min(c, l.Capacity)
	}
	return c
}

// Take takes cost tokens at now from the buckets whose states are s, one per
// limit of p (len(s) == len(p.Limits)). It succeeds only when every limit
// allows it, and then updates every state in s; when any limit denies it, s
// is left exactly as it was: there is no partial debit. A cost of 0 peeks
// and changes nothing.
//
// If each is not nil it must have len(p.Limits) elements, and receives each
// limit's own decision. When the take is denied nothing is taken from any
// bucket, so a limit that alone would have allowed it reports a peek: the
// tokens it holds and the time until it is full, not those after a take
// that did not happen. The returned decision is allowed when all are; its
// Limit and Remaining are those of the limit with the fewest tokens left,
// its RetryAfter the longest any limit needs (Never if any says so), and its
// ResetAfter the longest until any is full.
func (p Policy) Take(s []State, now time.Time, cost Tokens, each []Decision) Decision {
	if len(p.Limits) == 1 { // the common case, without the second pass
		ns, d := s[0].Take(p.Limits[0], now, cost)
		if each != nil {
			each[0] = d
		}
		s[0] = ns
		return d
	}
	allowed := true
	for i, l := range p.Limits {
		if _, d := s[i].Take(l, now, cost); !d.Allowed {
			allowed = false
			break
		}
	}
	// Take from every bucket when all allow it; otherwise report each as it
	// is, with the wait of those that deny.
	out := Decision{Allowed: allowed}
	for i, l := range p.Limits {
		var d Decision
		if allowed {
			s[i], d = s[i].Take(l, now, cost)
		} else if _, d = s[i].Take(l, now, cost); d.Allowed {
			_, d = s[i].Take(l, now, 0)
		}
		if each != nil {
			each[i] = d
		}
		if i == 0 || d.Remaining < out.Remaining {
			out.Limit, out.Remaining = d.Limit, d.Remaining
		}
		if d.RetryAfter == Never || out.RetryAfter == Never {
			out.RetryAfter = Never
		} else {
			out.RetryAfter = max(out.RetryAfter, d.RetryAfter)
		}
		out.ResetAfter = max(out.ResetAfter, d.ResetAfter)
	}
	return out
}
