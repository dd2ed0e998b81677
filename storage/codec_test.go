package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// testEntry returns an entry with one bucket of the named policy with the
// given limits and states.
func testEntry(name string, updated int64, limits []bucket.Limit, states []bucket.State) *entry {
	e := newEntry("")
	b := e.add(bucket.Policy{Name: name, Limits: limits})
	copy(b.states, states)
	b.updated = updated
	return e
}

// codecEntries are valid entries, from the common to the extreme.
func codecEntries() map[string]*entry {
	many := make([]bucket.Limit, bucket.MaxLimits)
	manyStates := make([]bucket.State, bucket.MaxLimits)
	for i := range many {
		many[i] = bucket.Limit{Capacity: tok(int64(i + 1)), Rate: bucket.Every(time.Duration(i+1) * time.Second)}
		manyStates[i] = bucket.State{Tokens: tok(int64(i)), At: t0.UnixNano() + int64(i), Rem: uint64(i)}
	}
	huge := bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: bucket.MaxTokens, Per: 1000 * time.Second}}
	return map[string]*entry{
		"default": testEntry("default", t0.UnixNano(), []bucket.Limit{DefaultLimit},
			[]bucket.State{{Tokens: tok(2), At: t0.UnixNano()}}),
		"empty bucket with remainder": testEntry("default", t0.UnixNano(), []bucket.Limit{DefaultLimit},
			[]bucket.State{{Tokens: 0, At: t0.UnixNano(), Rem: uint64(3*time.Second) - 1}}),
		"full bucket": testEntry("throttle", 0, []bucket.Limit{DefaultLimit},
			[]bucket.State{{Tokens: tok(5)}}),
		"no name": testEntry("", 1, []bucket.Limit{DefaultLimit}, []bucket.State{{Tokens: 1, At: 1}}),
		"binary name": testEntry("\x00\xffgold ★\n", -1, []bucket.Limit{DefaultLimit},
			[]bucket.State{{Tokens: bucket.Micro, At: -1}}),
		"most limits": testEntry("tiers", t0.UnixNano(), many, manyStates),
		"extremes": testEntry("huge", math.MaxInt64, []bucket.Limit{huge, {Capacity: bucket.Micro, Rate: bucket.Rate{Tokens: bucket.Micro, Per: math.MaxInt64}}},
			[]bucket.State{
				{Tokens: bucket.MaxTokens, At: math.MinInt64, Rem: uint64(1000*time.Second) - 1},
				{Tokens: bucket.Micro, At: math.MaxInt64, Rem: math.MaxInt64 - 1},
			}),
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for name, e := range codecEntries() {
		t.Run(name, func(t *testing.T) {
			b := encode(nil, e)
			require.Equal(t, byte(recordVersion), b[0], "the record starts with its version")
			got, err := decode(b)
			require.NoError(t, err)
			assert.Equal(t, e.subs[0].policy, got.subs[0].policy)
			assert.Equal(t, e.subs[0].states, got.subs[0].states)
			assert.Equal(t, e.subs[0].updated, got.subs[0].updated)
			assert.Equal(t, b, encode(nil, got))

			// encode appends.
			assert.Equal(t, append([]byte("prefix"), b...), encode([]byte("prefix"), e))

			// decode keeps nothing of its input.
			for i := range b {
				b[i] = 0xEE
			}
			assert.Equal(t, e.subs[0].policy, got.subs[0].policy)
			assert.Equal(t, e.subs[0].states, got.subs[0].states)
		})
	}
}

// rawLimit is one limit and its state, as encode lays them out.
type rawLimit struct {
	capacity, rateTokens, per, tokens, at int64
	rem                                   uint64
}

// raw writes a record field by field, valid or not.
func raw(version byte, name string, nameLen uint64, n uint64, ls ...rawLimit) []byte {
	b := []byte{version}
	b = binary.AppendUvarint(b, nameLen)
	b = append(b, name...)
	b = binary.AppendVarint(b, t0.UnixNano())
	b = binary.AppendUvarint(b, n)
	for _, l := range ls {
		b = binary.AppendVarint(b, l.capacity)
		b = binary.AppendVarint(b, l.rateTokens)
		b = binary.AppendVarint(b, l.per)
		b = binary.AppendVarint(b, l.tokens)
		b = binary.AppendVarint(b, l.at)
		b = binary.AppendUvarint(b, l.rem)
	}
	return b
}

// longer returns b with the varint at off written one byte longer: the same
// value, not in its shortest form.
func longer(b []byte, off int) []byte {
	_, n := binary.Uvarint(b[off:])
	out := append([]byte(nil), b[:off+n]...)
	out[off+n-1] |= 0x80
	out = append(out, 0)
	return append(out, b[off+n:]...)
}

func TestDecodeRejects(t *testing.T) {
	ok := rawLimit{capacity: int64(tok(5)), rateTokens: int64(bucket.Token), per: int64(3 * time.Second), tokens: int64(tok(2)), at: t0.UnixNano()}
	with := func(f func(*rawLimit)) rawLimit {
		l := ok
		f(&l)
		return l
	}
	valid := raw(recordVersion, "default", 7, 1, ok)
	_, err := decode(valid)
	require.NoError(t, err, "the base record is valid")

	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version 0", raw(0, "default", 7, 1, ok)},
		{"version 2", raw(2, "default", 7, 1, ok)},
		{"version 255", raw(255, "default", 7, 1, ok)},
		{"trailing byte", append(raw(recordVersion, "default", 7, 1, ok), 0)},
		{"name longer than the record", raw(recordVersion, "default", 1000, 1, ok)},
		{"name length overflows", raw(recordVersion, "default", math.MaxUint64, 1, ok)},
		{"no limits", raw(recordVersion, "default", 7, 0)},
		{"too many limits", raw(recordVersion, "default", 7, bucket.MaxLimits+1)},
		{"fewer limits than counted", raw(recordVersion, "default", 7, 2, ok)},
		{"more limits than counted", raw(recordVersion, "default", 7, 1, ok, ok)},
		{"zero capacity", raw(recordVersion, "default", 7, 1, with(func(l *rawLimit) { l.capacity, l.tokens = 0, 0 }))},
		{"capacity above the maximum", raw(recordVersion, "default", 7, 1, with(func(l *rawLimit) { l.capacity = int64(bucket.MaxTokens) + 1 }))},
		{"zero rate", raw(recordVersion, "default", 7, 1, with(func(l *rawLimit) { l.rateTokens = 0 }))},
		{"zero period", raw(recordVersion, "default", 7, 1, with(func(l *rawLimit) { l.per = 0 }))},
		{"negative period", raw(recordVersion, "default", 7, 1, with(func(l *rawLimit) { l.per = -1 }))},
		{"negative tokens", raw(recordVersion, "default", 7, 1, with(func(l *rawLimit) { l.tokens = -1 }))},
		{"tokens above capacity", raw(recordVersion, "default", 7, 1, with(func(l *rawLimit) { l.tokens = int64(tok(5)) + 1 }))},
		{"remainder of a whole period", raw(recordVersion, "default", 7, 1, with(func(l *rawLimit) { l.rem = uint64(3 * time.Second) }))},
		{"name length not minimal", longer(valid, 1)},
		{"updated not minimal", longer(valid, 1+1+len("default"))},
		{"remainder not minimal", longer(valid, len(valid)-1)},
		{"varint too long", append([]byte{recordVersion}, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)},
		{"varint overflows", append([]byte{recordVersion}, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02)},
	}
	for i := 1; i < len(valid); i++ {
		tests = append(tests, struct {
			name string
			b    []byte
		}{fmt.Sprintf("truncated to %d bytes", i), valid[:i]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := decode(tt.b)
			assert.ErrorIs(t, err, errCorrupt)
			assert.Nil(t, e)
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, e := range codecEntries() {
		f.Add(encode(nil, e))
	}
	f.Add([]byte{})
	f.Add([]byte{recordVersion})
	f.Add([]byte{2, 0, 0, 1})
	f.Add([]byte("not a record"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		e, err := decode(b)
		require.Equal(t, in, b, "decode does not modify its input")
		if err != nil {
			require.ErrorIs(t, err, errCorrupt)
			require.Nil(t, e)
			return
		}
		require.NotEmpty(t, e.subs)
		for _, sb := range e.subs {
			require.Len(t, sb.states, len(sb.policy.Limits))
			for i, l := range sb.policy.Limits {
				require.NoError(t, l.Validate())
				s := sb.states[i]
				require.GreaterOrEqual(t, s.Tokens, bucket.Tokens(0))
				require.LessOrEqual(t, s.Tokens, l.Capacity)
				require.Less(t, s.Rem, uint64(l.Rate.Per))
			}
		}
		require.Equal(t, b, encode(nil, e), "a decoded record encodes to the same bytes")
	})
}
