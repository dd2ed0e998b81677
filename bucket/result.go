package bucket

import (
	"errors"
	"time"
)

// Errors a front maps to a response. They are defined here, with the
// concepts they name, so that fronts need not import the store.
var (
	// ErrUnknownPolicy is returned for a take or peek that names a policy
	// the server does not have.
	ErrUnknownPolicy = errors.New("unknown policy")
	// ErrClosed is returned by a store that has been closed.
	ErrClosed = errors.New("store is closed")
	// ErrNotDurable is returned when a change could not be made durable
	// (a failed write or sync of the data file). The change stays made in
	// memory, and a later write carries it to the disk.
	ErrNotDurable = errors.New("not durable")
	// ErrStoreUnavailable is returned when a remote store (Redis) cannot be
	// reached, or does not answer within its timeout. Nothing is known to
	// have changed; the limiter applies the policy's failure mode.
	ErrStoreUnavailable = errors.New("store unavailable")
)

// FailMode is what a take does when the store is unavailable
// (ErrStoreUnavailable).
type FailMode uint8

const (
	// FailDefault follows the server's setting (--on-store-error). It is
	// the zero value.
	FailDefault FailMode = iota
	// FailClosed refuses the take with the error: a 503, "-ERR".
	FailClosed
	// FailOpen allows the take without a store, and counts it.
	FailOpen
)

// ParseFailMode parses "closed" or "open".
func ParseFailMode(s string) (FailMode, error) {
	switch s {
	case "closed":
		return FailClosed, nil
	case "open":
		return FailOpen, nil
	}
	return FailDefault, invalidf("on store error %q: want closed or open", s)
}

func (m FailMode) String() string {
	switch m {
	case FailClosed:
		return "closed"
	case FailOpen:
		return "open"
	}
	return "default"
}

// DefaultPolicy is the name of the policy used when a take names none.
const DefaultPolicy = "default"

// Result is a take's outcome under a named policy.
type Result struct {
	// Policy is the policy that decided, after any per-key override.
	Policy Policy
	// Decision is the combined decision of all its limits (see Policy.Take).
	// When Policy.Shadow is set the caller allows the request whatever it
	// says.
	Decision
	// Limits holds each limit's own decision, in the order of Policy.Limits,
	// when the policy has more than one; nil otherwise.
	Limits []Decision
}

// Snapshot is a stored bucket as seen at one instant.
type Snapshot struct {
	// Policy holds the limits the bucket was last taken under.
	Policy Policy
	// Decision is a peek at the instant (a take of 0): Remaining is the
	// tokens held, Limit the capacity and ResetAfter the time until full,
	// for the limit with the fewest tokens.
	Decision
	// Limits holds each limit's peek when the policy has more than one.
	Limits []Decision
	// UpdatedAt is when the bucket last changed.
	UpdatedAt time.Time
}

// Override gives one key its own limits under one policy: a premium
// customer's higher capacity, say. Its takes still name the policy; the
// override's limits replace the policy's for that key alone.
type Override struct {
	Key    string
	Policy string // the policy it overrides, e.g. DefaultPolicy
	Limits []Limit
}

// Counts are the decisions a policy has made since the server started.
// Denied counts the takes its limits refused, including those a shadow
// policy allowed anyway.
type Counts struct {
	Allowed uint64
	Denied  uint64
}

// PolicyInfo is a policy with its counts, as listed by a store.
type PolicyInfo struct {
	Policy
	Default bool // the policy a take that names none uses
	Counts
}

// Ceil returns d in whole units, rounded up, for telling a client how long
// to wait: a client that waits that long is never early. It is 0 for d <= 0
// (allowed, or full) and never overflows.
func Ceil(d, unit time.Duration) int64 {
	if d <= 0 || unit <= 0 {
		return 0
	}
	n := int64(d / unit)
	if d%unit != 0 {
		n++
	}
	return n
}
