package rlsconfig

import (
	"strings"
	"time"
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
