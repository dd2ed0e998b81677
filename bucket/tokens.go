package bucket

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tokens is an amount of tokens in fixed point: one unit is a micro-token,
// so Token (1 000 000) is one whole token and 250 000 is a quarter. All the
// arithmetic of this package is on integers of this unit; nothing is ever
// rounded through a float. The zero value is no tokens.
type Tokens int64

const (
	// Micro is the smallest amount: one millionth of a token.
	Micro Tokens = 1
	// Token is one whole token.
	Token Tokens = 1_000_000
	// MaxTokens is the largest capacity, rate or cost this package accepts:
	// 10^12 tokens.
	MaxTokens Tokens = 1_000_000_000_000 * Token
)

// decimals is the number of decimal places a Tokens value carries.
const decimals = 6

// ErrInvalid is wrapped by every error about invalid input: a malformed or
// out-of-range amount, rate, limit or policy. Fronts map it to a client
// error with errors.Is.
var ErrInvalid = errors.New("invalid")

// invalidf returns an error wrapping ErrInvalid whose text is only the message.
func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

// ParseTokens parses a non-negative decimal amount of tokens such as "1",
// "0.25" or "12.5". It accepts at most six decimal places and at most
// MaxTokens; anything else (NaN, infinities, exponents, signs other than a
// leading '+', more precision than a micro-token) is an error wrapping
// ErrInvalid. It never rounds: "0.0000001" is refused, not taken as zero.
func ParseTokens(s string) (Tokens, error) {
	if s != "" && len(s) <= 13 && allDigits(s) { // fast path: "1", "42"
		n, _ := strconv.ParseUint(s, 10, 64) // at most 13 digits: cannot fail
		if n > uint64(MaxTokens/Token) {
			return 0, invalidf("%q is more than the maximum of %s", s, MaxTokens)
		}
		return Tokens(n) * Token, nil
	}
	body := strings.TrimPrefix(s, "+")
	intPart, frac, hasDot := strings.Cut(body, ".")
	if body == "" || (hasDot && intPart == "" && frac == "") || !allDigits(intPart) || !allDigits(frac) {
		if strings.HasPrefix(s, "-") {
			return 0, invalidf("%q is negative", s)
		}
		return 0, invalidf("%q is not a decimal number", s)
	}
	if len(frac) > decimals {
		if strings.TrimRight(frac[decimals:], "0") != "" {
			return 0, invalidf("%q has more than %d decimal places", s, decimals)
		}
		frac = frac[:decimals]
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > 13 { // more than 10^13 whole tokens
		return 0, invalidf("%q is more than the maximum of %s", s, MaxTokens)
	}
	var whole uint64
	if intPart != "" {
		whole, _ = strconv.ParseUint(intPart, 10, 64) // digits only, at most 13: cannot fail
	}
	var micro uint64
	if frac != "" {
		micro, _ = strconv.ParseUint(frac+strings.Repeat("0", decimals-len(frac)), 10, 64)
	}
	if whole > uint64(MaxTokens/Token) || (whole == uint64(MaxTokens/Token) && micro > 0) {
		return 0, invalidf("%q is more than the maximum of %s", s, MaxTokens)
	}
	return Tokens(whole)*Token + Tokens(micro), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats t as a decimal with no trailing zeros: "5", "0.25", "-1.5".
func (t Tokens) String() string {
	return string(t.AppendText(nil))
}

// AppendText appends the decimal form of t (as String) to b.
func (t Tokens) AppendText(b []byte) []byte {
	u := uint64(t)
	if t < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/uint64(Token), 10)
	if f := u % uint64(Token); f != 0 {
		var digits [decimals]byte
		for i := decimals - 1; i >= 0; i-- {
			digits[i] = byte('0' + f%10)
			f /= 10
		}
		n := decimals
		for digits[n-1] == '0' {
			n--
		}
		b = append(b, '.')
		b = append(b, digits[:n]...)
	}
	return b
}

// Whole returns t rounded down to whole tokens (towards negative infinity).
func (t Tokens) Whole() int64 {
	w := int64(t / Token) // rounded towards zero
	if t%Token < 0 {
		w-- // without negating t, which overflows near math.MinInt64
	}
	return w
}

// Rate is a refill rate: Tokens every Per. The zero value is no rate and is
// invalid in a Limit.
type Rate struct {
	Tokens Tokens        // tokens added every Per; > 0
	Per    time.Duration // the period; > 0
}

// Every returns the rate of one token every d.
func Every(d time.Duration) Rate { return Rate{Tokens: Token, Per: d} }

// PerSecond returns the rate of n whole tokens a second.
func PerSecond(n int64) Rate { return Rate{Tokens: Tokens(n) * Token, Per: time.Second} }

// units are the bare period names ParseRate accepts after the slash.
var units = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "ms": time.Millisecond,
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour,
}

// ParseRate parses "TOKENS/PERIOD": "100/s", "10/m", "1000/h", "5000/d",
// "1/3s", "0.5/1m30s". PERIOD is a bare unit (ns, us, ms, s, m, h, d) or a
// Go duration (time.ParseDuration), optionally with a day count ("7d").
func ParseRate(s string) (Rate, error) {
	num, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, invalidf("rate %q is not TOKENS/PERIOD, e.g. 100/s or 1/3s", s)
	}
	n, err := ParseTokens(strings.TrimSpace(num))
	if err != nil {
		return Rate{}, invalidf("rate %q: %v", s, err)
	}
	d, err := parsePeriod(strings.TrimSpace(per))
	if err != nil {
		return Rate{}, invalidf("rate %q: %v", s, err)
	}
	r := Rate{Tokens: n, Per: d}
	if err := r.Validate(); err != nil {
		return Rate{}, err
	}
	return r, nil
}

func parsePeriod(s string) (time.Duration, error) {
	if d, ok := units[s]; ok {
		return d, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok && allDigits(days) && days != "" {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > 100_000 {
			return 0, fmt.Errorf("period %q is too long", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("period %q is not a duration such as s, m, h, d or 3s", s)
	}
	return d, nil
}

// Validate reports whether r is a usable rate: Tokens and Per positive, at
// most MaxTokens every Per, and no faster than 10^9 tokens a second.
func (r Rate) Validate() error {
	switch {
	case r.Tokens <= 0:
		return invalidf("rate %s: tokens must be positive", r)
	case r.Tokens > MaxTokens:
		return invalidf("rate %s: more than %s tokens a period", r, MaxTokens)
	case r.Per <= 0:
		return invalidf("rate %s: period must be positive", r)
	case uint64(r.Tokens)/uint64(Token) > uint64(r.Per) || // more than 10^9 tokens/s is more than 1 token/ns
		(uint64(r.Tokens)/uint64(Token) == uint64(r.Per) && r.Tokens%Token != 0):
		return invalidf("rate %s: faster than the maximum of 1000000000/s", r)
	}
	return nil
}

// String formats r as ParseRate reads it: "100/s", "1/3s".
func (r Rate) String() string {
	var per string
	switch r.Per {
	case time.Second:
		per = "s"
	case time.Minute:
		per = "m"
	case time.Hour:
		per = "h"
	case 24 * time.Hour:
		per = "d"
	default:
		per = r.Per.String()
	}
	return r.Tokens.String() + "/" + per
}
