package bucket_test

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// decimalRE is the grammar ParseTokens documents: an optional '+', digits,
// and an optional '.' and digits, with at least one digit somewhere.
var (
	decimalRE = regexp.MustCompile(`^\+?[0-9]*(\.[0-9]*)?$`)
	digitRE   = regexp.MustCompile(`[0-9]`)
)

// referenceParse is ParseTokens written the slow, obvious way: the value
// of s in micro-tokens with math/big, and whether ParseTokens must accept it.
func referenceParse(s string) (bucket.Tokens, bool) {
	if !decimalRE.MatchString(s) || !digitRE.MatchString(s) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(int64(bucket.Token), 1))
	if !r.IsInt() || r.Num().Cmp(big.NewInt(int64(bucket.MaxTokens))) > 0 {
		return 0, false
	}
	return bucket.Tokens(r.Num().Int64()), true
}

func TestParseTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bucket.Tokens
	}{
		{"0", 0},
		{"1", tok},
		{"42", 42 * tok},
		{"0.25", tok / 4},
		{"12.5", 12*tok + tok/2},
		{"2.000001", 2*tok + 1},
		{"0.000001", bucket.Micro},
		{"+1", tok},
		{"+0.5", tok / 2},
		{"1.", tok},
		{".5", tok / 2},
		{"007", 7 * tok},
		{"007.70", 7*tok + 7*tok/10},
		{"0.2500000", tok / 4}, // zeros past the sixth place lose nothing
		{"00000000000000000000001", tok},
		{"1000000000000", bucket.MaxTokens},
		{"1000000000000.000000", bucket.MaxTokens},
		{"999999999999.999999", bucket.MaxTokens - 1},
	}
	for _, tt := range tests {
		got, err := bucket.ParseTokens(tt.in)
		if assert.NoError(t, err, "ParseTokens(%q)", tt.in) {
			assert.Equal(t, tt.want, got, "ParseTokens(%q)", tt.in)
		}
		ref, ok := referenceParse(tt.in)
		assert.True(t, ok, "reference rejects %q", tt.in)
		assert.Equal(t, ref, got, "ParseTokens(%q) against the reference", tt.in)
	}
}

func TestParseTokensErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr string
	}{
		{"", `"" is not a decimal number`},
		{"+", `"+" is not a decimal number`},
		{".", `"." is not a decimal number`},
		{"+.", `"+." is not a decimal number`},
		{"-1", `"-1" is negative`},
		{"-0", `"-0" is negative`},
		{"-0.5", `"-0.5" is negative`},
		{"++1", `"++1" is not a decimal number`},
		{"NaN", `"NaN" is not a decimal number`},
		{"nan", `"nan" is not a decimal number`},
		{"Inf", `"Inf" is not a decimal number`},
		{"+Inf", `"+Inf" is not a decimal number`},
		{"-Inf", `"-Inf" is negative`},
		{"1e3", `"1e3" is not a decimal number`},
		{"0x10", `"0x10" is not a decimal number`},
		{"1_000", `"1_000" is not a decimal number`},
		{" 1", `" 1" is not a decimal number`},
		{"1 ", `"1 " is not a decimal number`},
		{"1.2.3", `"1.2.3" is not a decimal number`},
		{"1,5", `"1,5" is not a decimal number`},
		{"٣", `"٣" is not a decimal number`},
		{"0.0000001", `"0.0000001" has more than 6 decimal places`},
		{"0.1234567", `"0.1234567" has more than 6 decimal places`},
		{"1.0000000001", `"1.0000000001" has more than 6 decimal places`},
		{"1000000000001", `"1000000000001" is more than the maximum of 1000000000000`},
		{"1000000000000.000001", `"1000000000000.000001" is more than the maximum of 1000000000000`},
		{"1000000000000.5", `"1000000000000.5" is more than the maximum of 1000000000000`},
		{"9999999999999.5", `"9999999999999.5" is more than the maximum of 1000000000000`},
		{"10000000000000.5", `"10000000000000.5" is more than the maximum of 1000000000000`},
		{"18446744073709551616", `"18446744073709551616" is more than the maximum of 1000000000000`},
		{"+99999999999999999999999999", `"+99999999999999999999999999" is more than the maximum of 1000000000000`},
	}
	for _, tt := range tests {
		got, err := bucket.ParseTokens(tt.in)
		if !assert.Error(t, err, "ParseTokens(%q) = %v", tt.in, got) {
			continue
		}
		assert.Equal(t, tt.wantErr, err.Error())
		assert.True(t, errors.Is(err, bucket.ErrInvalid), "%v does not wrap ErrInvalid", err)
		assert.Zero(t, got)
		_, ok := referenceParse(tt.in)
		assert.False(t, ok, "reference accepts %q", tt.in)
	}
}

func TestTokensString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   bucket.Tokens
		want string
	}{
		{0, "0"},
		{bucket.Micro, "0.000001"},
		{tok / 4, "0.25"},
		{tok, "1"},
		{12*tok + tok/2, "12.5"},
		{10 * tok, "10"},
		{10*tok + 100_000, "10.1"},
		{tok + 10, "1.00001"},
		{bucket.MaxTokens, "1000000000000"},
		{-tok - tok/2, "-1.5"},
		{-bucket.Micro, "-0.000001"},
		{math.MaxInt64, "9223372036854.775807"},
		{math.MinInt64, "-9223372036854.775808"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.in.String(), "Tokens(%d).String()", int64(tt.in))
		assert.Equal(t, "x="+tt.want, string(tt.in.AppendText([]byte("x="))), "Tokens(%d).AppendText", int64(tt.in))
		if tt.in >= 0 && tt.in <= bucket.MaxTokens {
			got, err := bucket.ParseTokens(tt.want)
			require.NoError(t, err)
			assert.Equal(t, tt.in, got, "round trip of %q", tt.want)
		}
	}
}

func TestTokensRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []bucket.Tokens{0, 1, 9, 10, 99, 100, 999_999, tok, tok + 1, 123_456_789, bucket.MaxTokens - 1, bucket.MaxTokens} {
		got, err := bucket.ParseTokens(v.String())
		require.NoError(t, err, "ParseTokens(%q)", v.String())
		assert.Equal(t, v, got)
	}
}

func TestTokensWhole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   bucket.Tokens
		want int64
	}{
		{0, 0},
		{bucket.Micro, 0},
		{tok - 1, 0},
		{tok, 1},
		{3*tok + tok/2, 3},
		{-bucket.Micro, -1},
		{-tok, -1},
		{-tok - 1, -2},
		{-3*tok - tok/2, -4},
		{bucket.MaxTokens, 1_000_000_000_000},
		{math.MaxInt64, 9_223_372_036_854},
		{math.MinInt64 + 1, -9_223_372_036_855},
		{math.MinInt64, -9_223_372_036_855},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.in.Whole(), "Tokens(%d).Whole()", int64(tt.in))
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bucket.Rate
		str  string // what String returns
	}{
		{"100/s", bucket.PerSecond(100), "100/s"},
		{"10/m", bucket.Rate{Tokens: 10 * tok, Per: time.Minute}, "10/m"},
		{"1000/h", bucket.Rate{Tokens: 1000 * tok, Per: time.Hour}, "1000/h"},
		{"1/3s", bucket.Every(3 * time.Second), "1/3s"},
		{"5000/d", bucket.Rate{Tokens: 5000 * tok, Per: 24 * time.Hour}, "5000/d"},
		{"0.5/1m30s", bucket.Rate{Tokens: tok / 2, Per: 90 * time.Second}, "0.5/1m30s"},
		{"1/7d", bucket.Rate{Tokens: tok, Per: 7 * 24 * time.Hour}, "1/168h0m0s"},
		{"3/1d", bucket.Rate{Tokens: 3 * tok, Per: 24 * time.Hour}, "3/d"},
		{"1/100000d", bucket.Rate{Tokens: tok, Per: 100_000 * 24 * time.Hour}, "1/2400000h0m0s"},
		{" 2 / 500ms ", bucket.Rate{Tokens: 2 * tok, Per: 500 * time.Millisecond}, "2/500ms"},
		{"1/sec", bucket.PerSecond(1), "1/s"},
		{"1/second", bucket.PerSecond(1), "1/s"},
		{"1/min", bucket.Rate{Tokens: tok, Per: time.Minute}, "1/m"},
		{"1/minute", bucket.Rate{Tokens: tok, Per: time.Minute}, "1/m"},
		{"1/hour", bucket.Rate{Tokens: tok, Per: time.Hour}, "1/h"},
		{"1/day", bucket.Rate{Tokens: tok, Per: 24 * time.Hour}, "1/d"},
		{"1/ms", bucket.Rate{Tokens: tok, Per: time.Millisecond}, "1/1ms"},
		{"1/us", bucket.Rate{Tokens: tok, Per: time.Microsecond}, "1/1µs"},
		{"1/ns", bucket.Rate{Tokens: tok, Per: time.Nanosecond}, "1/1ns"}, // the fastest: 10^9/s
		{"1000000000/s", bucket.PerSecond(1e9), "1000000000/s"},
		{"1000000000000/1000s", bucket.Rate{Tokens: bucket.MaxTokens, Per: 1000 * time.Second}, "1000000000000/16m40s"},
		{"0.000001/2562047h47m16.854775807s", bucket.Rate{Tokens: bucket.Micro, Per: math.MaxInt64}, "0.000001/2562047h47m16.854775807s"},
		{"+1.50/1.5s", bucket.Rate{Tokens: tok + tok/2, Per: 1500 * time.Millisecond}, "1.5/1.5s"},
	}
	for _, tt := range tests {
		got, err := bucket.ParseRate(tt.in)
		if !assert.NoError(t, err, "ParseRate(%q)", tt.in) {
			continue
		}
		assert.Equal(t, tt.want, got, "ParseRate(%q)", tt.in)
		assert.NoError(t, got.Validate())
		assert.Equal(t, tt.str, got.String(), "ParseRate(%q).String()", tt.in)
		back, err := bucket.ParseRate(got.String())
		if assert.NoError(t, err, "ParseRate(%q)", got.String()) {
			assert.Equal(t, got, back, "round trip through %q", got.String())
		}
	}
}

func TestParseRateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr string
	}{
		{"", `rate "" is not TOKENS/PERIOD, e.g. 100/s or 1/3s`},
		{"7d", `rate "7d" is not TOKENS/PERIOD, e.g. 100/s or 1/3s`},
		{"100", `rate "100" is not TOKENS/PERIOD, e.g. 100/s or 1/3s`},
		{"/s", `rate "/s": "" is not a decimal number`},
		{"1/", `rate "1/": period "" is not a duration such as s, m, h, d or 3s`},
		{"NaN/s", `rate "NaN/s": "NaN" is not a decimal number`},
		{"Inf/s", `rate "Inf/s": "Inf" is not a decimal number`},
		{"1/Inf", `rate "1/Inf": period "Inf" is not a duration such as s, m, h, d or 3s`},
		{"1/NaN", `rate "1/NaN": period "NaN" is not a duration such as s, m, h, d or 3s`},
		{"-1/s", `rate "-1/s": "-1" is negative`},
		{"1/-1s", `rate 1/-1s: period must be positive`},
		{"0/s", `rate 0/s: tokens must be positive`},
		{"1/0s", `rate 1/0s: period must be positive`},
		{"1/0", `rate 1/0s: period must be positive`},
		{"1/0d", `rate 1/0s: period must be positive`},
		{"1/100001d", `rate "1/100001d": period "100001d" is too long`},
		{"1/99999999999999999999d", `rate "1/99999999999999999999d": period "99999999999999999999d" is too long`},
		{"1/3000000h", `rate "1/3000000h": period "3000000h" is not a duration such as s, m, h, d or 3s`},
		{"1000000001/s", `rate 1000000001/s: faster than the maximum of 1000000000/s`},
		{"2/ns", `rate 2/1ns: faster than the maximum of 1000000000/s`},
		{"1.000001/ns", `rate 1.000001/1ns: faster than the maximum of 1000000000/s`},
		{"1000000000000/999s", `rate 1000000000000/16m39s: faster than the maximum of 1000000000/s`},
		{"0.0000001/s", `rate "0.0000001/s": "0.0000001" has more than 6 decimal places`},
		{"1000000000001/d", `rate "1000000000001/d": "1000000000001" is more than the maximum of 1000000000000`},
		{"1e3/s", `rate "1e3/s": "1e3" is not a decimal number`},
		{"1/s/s", `rate "1/s/s": period "s/s" is not a duration such as s, m, h, d or 3s`},
		{"1/x", `rate "1/x": period "x" is not a duration such as s, m, h, d or 3s`},
		{"1/S", `rate "1/S": period "S" is not a duration such as s, m, h, d or 3s`},
		{"1/1d12h", `rate "1/1d12h": period "1d12h" is not a duration such as s, m, h, d or 3s`},
	}
	for _, tt := range tests {
		got, err := bucket.ParseRate(tt.in)
		if !assert.Error(t, err, "ParseRate(%q) = %v", tt.in, got) {
			continue
		}
		assert.Equal(t, tt.wantErr, err.Error(), "ParseRate(%q)", tt.in)
		assert.True(t, errors.Is(err, bucket.ErrInvalid), "%v does not wrap ErrInvalid", err)
		assert.Zero(t, got)
	}
}

func TestRateValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r       bucket.Rate
		wantErr bool
	}{
		{bucket.PerSecond(1), false},
		{bucket.Every(time.Nanosecond), false},
		{bucket.Rate{Tokens: bucket.Micro, Per: math.MaxInt64}, false},
		{bucket.Rate{Tokens: bucket.MaxTokens, Per: 1000 * time.Second}, false},
		{bucket.Rate{Tokens: tok, Per: 1}, false},
		{bucket.Rate{Tokens: tok + 1, Per: 1}, true},
		{bucket.Rate{Tokens: 2 * tok, Per: 1}, true},
		{bucket.Rate{Tokens: bucket.MaxTokens, Per: 999_999_999_999}, true},
		{bucket.Rate{Tokens: bucket.MaxTokens + 1, Per: math.MaxInt64}, true},
		{bucket.Rate{}, true},
		{bucket.Rate{Tokens: tok}, true},
		{bucket.Rate{Per: time.Second}, true},
		{bucket.Rate{Tokens: -tok, Per: time.Second}, true},
		{bucket.Rate{Tokens: tok, Per: -time.Second}, true},
		{bucket.Rate{Tokens: math.MinInt64, Per: math.MinInt64}, true},
		{bucket.Rate{Tokens: math.MaxInt64, Per: math.MaxInt64}, true},
	}
	for _, tt := range tests {
		err := tt.r.Validate()
		if !tt.wantErr {
			assert.NoError(t, err, "%#v", tt.r)
			continue
		}
		if assert.Error(t, err, "%#v", tt.r) {
			assert.True(t, errors.Is(err, bucket.ErrInvalid), "%v does not wrap ErrInvalid", err)
		}
	}
}

func TestLimitValidate(t *testing.T) {
	t.Parallel()
	r := bucket.PerSecond(1)
	tests := []struct {
		l       bucket.Limit
		wantErr string
	}{
		{bucket.Limit{Capacity: tok, Rate: r}, ""},
		{bucket.Limit{Capacity: bucket.Micro, Rate: r}, ""},
		{bucket.Limit{Capacity: bucket.MaxTokens, Rate: r}, ""},
		{bucket.Limit{}, "capacity 0 must be positive"},
		{bucket.Limit{Capacity: -tok, Rate: r}, "capacity -1 must be positive"},
		{bucket.Limit{Capacity: bucket.MaxTokens + 1, Rate: r}, "capacity 1000000000000.000001 is more than the maximum of 1000000000000"},
		{bucket.Limit{Capacity: tok}, "rate 0/0s: tokens must be positive"},
	}
	for _, tt := range tests {
		err := tt.l.Validate()
		if tt.wantErr == "" {
			assert.NoError(t, err, "%#v", tt.l)
			continue
		}
		if assert.Error(t, err, "%#v", tt.l) {
			assert.Equal(t, tt.wantErr, err.Error())
			assert.True(t, errors.Is(err, bucket.ErrInvalid), "%v does not wrap ErrInvalid", err)
		}
	}
}

func TestRateConstructors(t *testing.T) {
	t.Parallel()
	assert.Equal(t, bucket.Rate{Tokens: tok, Per: 3 * time.Second}, bucket.Every(3*time.Second))
	assert.Equal(t, bucket.Rate{Tokens: 100 * tok, Per: time.Second}, bucket.PerSecond(100))
	assert.Equal(t, "1/3s", bucket.Every(3*time.Second).String())
	assert.Equal(t, "100/s", bucket.PerSecond(100).String())
}

func TestCeil(t *testing.T) {
	tests := []struct {
		d, unit time.Duration
		want    int64
	}{
		{-time.Second, time.Second, 0},
		{0, time.Second, 0},
		{1, time.Second, 1},
		{time.Second, time.Second, 1},
		{time.Second + 1, time.Second, 2},
		{1200 * time.Millisecond, time.Millisecond, 1200},
		{1200*time.Millisecond + 1, time.Millisecond, 1201},
		{math.MaxInt64, time.Nanosecond, math.MaxInt64},
		{math.MaxInt64, time.Second, math.MaxInt64/int64(time.Second) + 1},
		{time.Second, 0, 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, bucket.Ceil(tt.d, tt.unit), "Ceil(%v, %v)", tt.d, tt.unit)
	}
}
