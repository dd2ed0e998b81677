package bucket_test

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// fuzzLimit maps any three integers to a valid limit: a capacity from one
// micro-token to MaxTokens, and a rate from one micro-token every
// math.MaxInt64 ns to the fastest allowed.
func fuzzLimit(capacity, tokens, per int64) bucket.Limit {
	l := bucket.Limit{
		Capacity: 1 + bucket.Tokens(uint64(capacity)%uint64(bucket.MaxTokens)),
		Rate: bucket.Rate{
			Tokens: 1 + bucket.Tokens(uint64(tokens)%uint64(bucket.MaxTokens)),
			Per:    1 + time.Duration(uint64(per)%math.MaxInt64),
		},
	}
	// No faster than a token a nanosecond.
	if fastest := time.Duration((l.Rate.Tokens + bucket.Token - 1) / bucket.Token); l.Rate.Per < fastest {
		l.Rate.Per = fastest
	}
	return l
}

// addSat returns a+b saturated to the int64 range.
func addSat(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}

// model is the bucket written the slow, obvious way, in exact integers:
// level is the tokens held times Rate.Per, in micro-tokens, at the instant at.
// Like State, it moves only when a take is stored.
type model struct {
	l         bucket.Limit
	per, rate *big.Int // Rate.Per and Rate.Tokens
	full      *big.Int // Capacity×Per
	level     *big.Int
	at        int64
}

func newModel(l bucket.Limit, s bucket.State) *model {
	m := &model{
		l:    l,
		per:  big.NewInt(int64(l.Rate.Per)),
		rate: big.NewInt(int64(l.Rate.Tokens)),
		at:   s.At,
	}
	m.full = new(big.Int).Mul(big.NewInt(int64(l.Capacity)), m.per)
	m.level = new(big.Int).Mul(big.NewInt(int64(s.Tokens)), m.per)
	m.level.Add(m.level, new(big.Int).SetUint64(s.Rem))
	return m
}

// wait returns behind + ceil(need/Tokens) saturated at math.MaxInt64.
func (m *model) wait(behind *big.Int, need *big.Int) time.Duration {
	q, r := new(big.Int).QuoRem(need, m.rate, new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	q.Add(q, behind)
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return time.Duration(q.Int64())
}

// take is the decision of a take of cost at now, and stores it if allowed.
func (m *model) take(now int64, cost bucket.Tokens) bucket.Decision {
	level, at := new(big.Int).Set(m.level), m.at
	if now > at {
		elapsed := new(big.Int).Sub(big.NewInt(now), big.NewInt(at))
		level.Add(level, elapsed.Mul(elapsed, m.rate))
		if level.Cmp(m.full) > 0 {
			level.Set(m.full)
		}
		at = now
	}
	behind := new(big.Int).Sub(big.NewInt(at), big.NewInt(now))
	need := new(big.Int).Mul(big.NewInt(int64(cost)), m.per)
	d := bucket.Decision{Limit: m.l.Capacity}
	switch {
	case cost > m.l.Capacity:
		d.RetryAfter = bucket.Never
	case need.Cmp(level) > 0:
		d.RetryAfter = m.wait(behind, need.Sub(need, level))
	default:
		d.Allowed = true
		if cost > 0 {
			level.Sub(level, need)
			m.level, m.at = level, at
		}
	}
	d.Remaining = bucket.Tokens(new(big.Int).Quo(level, m.per).Int64())
	if level.Cmp(m.full) < 0 {
		d.ResetAfter = m.wait(behind, new(big.Int).Sub(m.full, level))
	}
	return d
}

// is reports whether s is the state of m: the same instant and exactly the
// same tokens and fraction of a micro-token.
func (m *model) is(s bucket.State) bool {
	level := new(big.Int).Mul(big.NewInt(int64(s.Tokens)), m.per)
	level.Add(level, new(big.Int).SetUint64(s.Rem))
	return s.At == m.at && level.Cmp(m.level) == 0
}

// An op is one take in FuzzTake's ops, in four bytes, kept small because
// the fuzzer minimizes a failing input in time quadratic in its length:
//
//	byte 0: bits 0-5 a shift, bit 6 a sign (back in time, when arbitrary
//	        times are asked for), bit 7 no step at all
//	byte 1: a mantissa: the step of time is mantissa<<shift ns, saturated
//	bytes 2-3, little-endian: bits 14-15 a kind and bits 0-13 a value x:
//	        0: a cost of x micro-tokens
//	        1: a cost of x/16383 of the capacity
//	        2: a cost of the capacity+x-8192 micro-tokens (around the capacity)
//	        3: a cost of x whole tokens
const opSize = 4

// maxOps is the most ops FuzzTake reads from one input: a step is checked
// exactly against the model, so long sequences add little, and minimizing
// an input of n bytes takes n² runs.
const maxOps = 32

// op is one decoded op.
type op struct {
	step int64
	cost bucket.Tokens
}

func decodeOp(b []byte, c bucket.Tokens, arbitrary bool) op {
	var o op
	if b[0]&0x80 == 0 {
		shift, m := uint(b[0]&0x3f), uint64(b[1])
		if m != 0 && shift+uint(bits.Len64(m)) > 63 {
			o.step = math.MaxInt64
		} else {
			o.step = int64(m << shift)
		}
		if arbitrary && b[0]&0x40 != 0 {
			o.step = -o.step
		}
	}
	v := binary.LittleEndian.Uint16(b[2:])
	x := uint64(v & 0x3fff)
	switch v >> 14 {
	case 0:
		o.cost = bucket.Tokens(x)
	case 1:
		hi, lo := bits.Mul64(uint64(c), x)
		q, _ := bits.Div64(hi, lo, 0x3fff)
		o.cost = bucket.Tokens(q)
	case 2:
		o.cost = max(0, c+bucket.Tokens(x)-8192)
	case 3:
		o.cost = bucket.Tokens(x) * bucket.Token
	}
	return o
}

// encodeOp is the op of a step of m<<shift ns (back in time if back, none if
// m is 0) and a cost of the given kind and value.
func encodeOp(m byte, shift uint8, back bool, kind, x uint16) []byte {
	b0 := shift & 0x3f
	if back {
		b0 |= 0x40
	}
	if m == 0 {
		b0 |= 0x80
	}
	return binary.LittleEndian.AppendUint16([]byte{b0, m}, kind<<14|x&0x3fff)
}

// concat concatenates encoded ops.
func concat(o ...[]byte) []byte {
	var b []byte
	for _, x := range o {
		b = append(b, x...)
	}
	return b
}

func FuzzTake(f *testing.F) {
	const (
		micro, fraction, around, whole = 0, 1, 2, 3
		ms                             = 20 // 1<<20 ns is about a millisecond
	)
	f.Add(int64(5*tok-1), int64(tok-1), int64(3*time.Second-1), t0.UnixNano(), uint64(5*tok), false, concat(
		encodeOp(0, 0, false, whole, 1), encodeOp(0, 0, false, whole, 1), encodeOp(0, 0, false, whole, 4),
		encodeOp(1, 30, false, whole, 1), encodeOp(3, 29, false, fraction, 8000), encodeOp(10, 30, false, around, 9000)))
	f.Add(int64(3*tok-1), int64(tok-1), int64(time.Second-1), t0.UnixNano(), uint64(3*tok), true, concat(
		encodeOp(3, 30, true, micro, 0), encodeOp(0, 0, false, whole, 3), encodeOp(5, 30, false, whole, 1), encodeOp(3, 30, true, whole, 1), encodeOp(1, 30, false, micro, 0),
		encodeOp(1, 30, true, whole, 2), encodeOp(7, 30, false, whole, 1)))
	f.Add(int64(bucket.MaxTokens-1), int64(1e9*tok-1), int64(time.Second-1), int64(math.MinInt64), uint64(0), false, concat(
		encodeOp(255, 63, false, around, 8192), encodeOp(1, 0, false, micro, 1), encodeOp(255, 63, false, fraction, 0x3fff)))
	f.Add(int64(tok/1000-1), int64(0), int64(math.MaxInt64-1), int64(math.MaxInt64), uint64(1), true, concat(
		encodeOp(255, 63, true, micro, 1), encodeOp(255, 63, false, around, 8191), encodeOp(255, 63, true, around, 8192), encodeOp(1, 0, false, around, 8193)))
	f.Add(int64(7*tok), int64(3*tok+6), int64(13*time.Second-1), int64(0), uint64(3*tok), false, concat(
		encodeOp(1, 0, false, micro, 1), encodeOp(3, ms, false, micro, 7), encodeOp(200, ms, false, fraction, 5000), encodeOp(1, 33, false, fraction, 16000)))

	f.Fuzz(func(t *testing.T, capacity, tokens, per, start int64, fill uint64, arbitrary bool, ops []byte) {
		l := fuzzLimit(capacity, tokens, per)
		require.NoError(t, l.Validate())
		c := l.Capacity
		s := bucket.Set(l, time.Unix(0, start), bucket.Tokens(fill%uint64(c+1)))
		m := newModel(l, s)
		initial := new(big.Int).Set(m.level)

		now, latest := start, start
		taken := new(big.Int) // the total of allowed costs, in micro-tokens
		for i := 0; i+opSize <= len(ops) && i < maxOps*opSize; i += opSize {
			o := decodeOp(ops[i:i+opSize], c, arbitrary)
			now = addSat(now, o.step)
			latest = max(latest, now)
			cost, at := o.cost, time.Unix(0, now)

			want := m.take(now, cost)
			next, d := s.Take(l, at, cost)
			require.Equal(t, want, d, "op %d: take %s at %d from %+v under %+v", i/opSize, cost, now, s, l)
			checkTake(t, l, s, next, at, cost, d)
			require.True(t, m.is(next), "op %d: state %+v, the model holds %v/%v at %d", i/opSize, next, m.level, m.per, m.at)
			if t.Failed() {
				t.FailNow()
			}
			if d.Allowed && cost > 0 {
				taken.Add(taken, big.NewInt(int64(cost)))
			}
			s = next

			// No sequence of takes gets more than the bucket held at the
			// start plus what it earned up to the latest instant:
			// taken×Per <= initial + (latest-start)×Tokens.
			supply := new(big.Int).Sub(big.NewInt(latest), big.NewInt(start))
			supply.Mul(supply, m.rate).Add(supply, initial)
			require.LessOrEqual(t, new(big.Int).Mul(taken, m.per).Cmp(supply), 0,
				"op %d: took %v micro-tokens, more than %v/%v", i/opSize, taken, supply, m.per)
		}
	})
}

func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{
		"0", "1", "0.25", "12.5", "+1", "1.", ".5", "007", "0.000001", "0.2500000",
		"1000000000000", "999999999999.999999", "1000000000000.000001", "18446744073709551616",
		"", "+", ".", "-1", "NaN", "Inf", "1e3", "0x10", "1_000", " 1", "0.0000001", "٣",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := bucket.ParseTokens(s)
		ref, ok := referenceParse(s)
		if err != nil {
			require.ErrorIs(t, err, bucket.ErrInvalid)
			require.False(t, ok, "ParseTokens(%q) = %v, want %s", s, err, ref)
			require.Zero(t, v)
			return
		}
		require.True(t, ok, "ParseTokens(%q) = %s, want an error", s, v)
		require.Equal(t, ref, v, "ParseTokens(%q)", s)
		require.GreaterOrEqual(t, v, bucket.Tokens(0))
		require.LessOrEqual(t, v, bucket.MaxTokens)
		back, err := bucket.ParseTokens(v.String())
		require.NoError(t, err, "ParseTokens(%q) of %q", v.String(), s)
		require.Equal(t, v, back, "round trip of %q through %q", s, v.String())
	})
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{
		"100/s", "10/m", "1000/h", "1/3s", "5000/d", "0.5/1m30s", "1/7d", " 2 / 500ms ", "1/ns", "1/us",
		"1000000000/s", "0.000001/2562047h47m16.854775807s", "1/100000d",
		"", "7d", "/s", "1/", "NaN/s", "Inf/s", "-1/s", "1/-1s", "1/0s", "2/ns", "0.0000001/s", "1/100001d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := bucket.ParseRate(s)
		if err != nil {
			require.ErrorIs(t, err, bucket.ErrInvalid)
			require.Zero(t, r)
			return
		}
		require.NoError(t, r.Validate(), "ParseRate(%q) = %+v", s, r)
		back, err := bucket.ParseRate(r.String())
		require.NoError(t, err, "ParseRate(%q) of %q", r.String(), s)
		assert.Equal(t, r, back, "round trip of %q through %q", s, r.String())
	})
}

func TestDecodeOp(t *testing.T) {
	t.Parallel()
	c := 10 * tok
	tests := []struct {
		b         []byte
		arbitrary bool
		want      op
	}{
		{encodeOp(0, 5, false, 0, 7), false, op{0, 7}},
		{encodeOp(3, 30, false, 3, 2), false, op{3 << 30, 2 * tok}},
		{encodeOp(3, 30, true, 1, 0x3fff), false, op{3 << 30, c}}, // back in time only when arbitrary
		{encodeOp(3, 30, true, 1, 0x3fff/2), true, op{-3 << 30, c * 8191 / 16383}},
		{encodeOp(1, 62, false, 2, 8192), false, op{1 << 62, c}},
		{encodeOp(2, 62, false, 2, 8193), false, op{math.MaxInt64, c + 1}},
		{encodeOp(255, 63, true, 2, 0), true, op{-math.MaxInt64, c - 8192}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, decodeOp(tt.b, c, tt.arbitrary), "%x", tt.b)
	}
}
