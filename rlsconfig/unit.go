package rlsconfig

import (
	"strings"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// Unit is the period of a rate limit. Its values are those of the RLS
// protocol's RateLimitResponse.RateLimit.Unit, so a front converts by
// value. The zero value, UnitUnknown, is no unit.
type Unit int32

// The units, numbered as the protocol numbers them.
const (
	UnitUnknown Unit = 0
	Second      Unit = 1
	Minute      Unit = 2
	Hour        Unit = 3
	Day         Unit = 4
	Month       Unit = 5 // 30 days, as envoyproxy/ratelimit counts it
	Year        Unit = 6 // 365 days
	Week        Unit = 7
)

var unitNames = map[string]Unit{
	"second": Second, "minute": Minute, "hour": Hour, "day": Day,
	"week": Week, "month": Month, "year": Year,
}

// ParseUnit returns the unit named s, in any case ("second", "MINUTE"); it
// reports false for any other s.
func ParseUnit(s string) (Unit, bool) {
	u, ok := unitNames[strings.ToLower(s)]
	return u, ok
}

// Duration returns the length of u; 0 for UnitUnknown or an unknown value.
func (u Unit) Duration() time.Duration {
	const day = 24 * time.Hour
	switch u {
	case Second:
		return time.Second
	case Minute:
		return time.Minute
	case Hour:
		return time.Hour
	case Day:
		return day
	case Week:
		return 7 * day
	case Month:
		return 30 * day
	case Year:
		return 365 * day
	}
	return 0
}

// String returns the unit's name in lower case, as the file writes it.
func (u Unit) String() string {
	for n, v := range unitNames {
		if v == u {
			return n
		}
	}
	return "unknown"
}

// Limit returns the token bucket of r: a capacity of RequestsPerUnit tokens
// that earns RequestsPerUnit tokens per Unit, so that an idle client has the
// whole quota at once and a busy one gets it spread over the unit. It
// reports false when r keeps no bucket: unlimited, or RequestsPerUnit 0
// (every request is over the limit). The limit may still be invalid (more
// than 10^9 a second): see bucket.Limit.Validate.
func (r RateLimit) Limit() (bucket.Limit, bool) {
	if r.Unlimited || r.RequestsPerUnit == 0 || r.Unit.Duration() == 0 {
		return bucket.Limit{}, false
	}
	n := bucket.Tokens(r.RequestsPerUnit) * bucket.Token
	return bucket.Limit{Capacity: n, Rate: bucket.Rate{Tokens: n, Per: r.Unit.Duration()}}, true
}
