package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// at0 is the instant the records of these tests were written at.
var at0 = time.Unix(1_700_000_000, 0).UnixNano()

const tk = bucket.Token

// fiveLimit is the original service's limit: 5 tokens, one every 3 s.
var fiveLimit = bucket.Limit{Capacity: 5 * tk, Rate: bucket.Every(3 * time.Second)}

// bkt is one bucket of a test entry.
type bkt struct {
	ns      Namespace
	updated int64
	limits  []bucket.Limit
	states  []bucket.State
}

// testEntry returns an entry holding bs, in that order.
func testEntry(bs ...bkt) *entry {
	e := newEntry("")
	for _, b := range bs {
		s := e.add(b.ns, b.limits)
		copy(s.states, b.states)
		s.updated = b.updated
	}
	return e
}

// codecEntries are valid entries, from the common to the extreme.
func codecEntries() map[string]*entry {
	many := make([]bucket.Limit, bucket.MaxLimits)
	manyStates := make([]bucket.State, bucket.MaxLimits)
	for i := range many {
		many[i] = bucket.Limit{Capacity: bucket.Tokens(i+1) * tk, Rate: bucket.Every(time.Duration(i+1) * time.Second)}
		manyStates[i] = bucket.State{Tokens: bucket.Tokens(i) * tk, At: at0 + int64(i), Rem: uint64(i)}
	}
	huge := bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: bucket.MaxTokens, Per: 1000 * time.Second}}
	tiny := bucket.Limit{Capacity: bucket.Micro, Rate: bucket.Rate{Tokens: bucket.Micro, Per: math.MaxInt64}}
	ten := bucket.Limit{Capacity: 10 * tk, Rate: bucket.PerSecond(1)}
	one := func(t bucket.Tokens) []bucket.State { return []bucket.State{{Tokens: t, At: at0}} }
	return map[string]*entry{
		"policy": testEntry(bkt{PolicyNS("default"), at0, []bucket.Limit{fiveLimit}, one(2 * tk)}),
		"cell":   testEntry(bkt{CellNS, at0, []bucket.Limit{ten}, one(3 * tk)}),
		"empty bucket with remainder": testEntry(bkt{PolicyNS("default"), at0, []bucket.Limit{fiveLimit},
			[]bucket.State{{Tokens: 0, At: at0, Rem: uint64(3*time.Second) - 1}}}),
		"cell in debt": testEntry(bkt{CellNS, at0, []bucket.Limit{ten}, []bucket.State{{At: at0 + int64(time.Hour)}}}),
		"several buckets": testEntry(
			bkt{PolicyNS("default"), at0, []bucket.Limit{fiveLimit}, one(tk)},
			bkt{PolicyNS("gold"), at0 + 1, []bucket.Limit{ten, fiveLimit}, []bucket.State{{Tokens: 9 * tk, At: at0}, {Tokens: 4 * tk, At: at0 + 1, Rem: 7}}},
			bkt{CellNS, at0 + 2, []bucket.Limit{ten}, one(0)},
		),
		"binary name": testEntry(bkt{PolicyNS("\x00\xffgold ★\n"), -1, []bucket.Limit{fiveLimit},
			[]bucket.State{{Tokens: bucket.Micro, At: -1}}}),
		"longest name": testEntry(bkt{PolicyNS(strings.Repeat("n", 255)), at0, []bucket.Limit{fiveLimit}, one(0)}),
		"most limits":  testEntry(bkt{PolicyNS("tiers"), at0, many, manyStates}),
		"extremes": testEntry(bkt{PolicyNS("huge"), math.MaxInt64, []bucket.Limit{huge, tiny},
			[]bucket.State{
				{Tokens: bucket.MaxTokens, At: math.MinInt64, Rem: uint64(1000*time.Second) - 1},
				{Tokens: bucket.Micro, At: math.MaxInt64, Rem: math.MaxInt64 - 1},
			}}),
	}
}

// requireSameBuckets checks that got holds want's buckets, in order.
func requireSameBuckets(t *testing.T, want, got *entry) {
	t.Helper()
	require.Len(t, got.subs, len(want.subs))
	for i, w := range want.subs {
		g := got.subs[i]
		assert.Equal(t, w.ns, g.ns, "bucket %d", i)
		assert.Equal(t, w.limits, g.limits, "bucket %d", i)
		assert.Equal(t, w.states, g.states, "bucket %d", i)
		assert.Equal(t, w.updated, g.updated, "bucket %d", i)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for name, e := range codecEntries() {
		t.Run(name, func(t *testing.T) {
			b := encode(nil, e)
			require.Equal(t, byte(recordVersion), b[0], "the record starts with its version")
			got, err := decode(b)
			require.NoError(t, err)
			requireSameBuckets(t, e, got)
			assert.Equal(t, b, encode(nil, got))

			// encode appends.
			assert.Equal(t, append([]byte("prefix"), b...), encode([]byte("prefix"), e))

			// decode keeps nothing of its input.
			want := encode(nil, got)
			for i := range b {
				b[i] = 0xEE
			}
			requireSameBuckets(t, e, got)
			assert.Equal(t, want, encode(nil, got))
		})
	}
}

// field is one limit and its state, as a record lays them out.
type field struct {
	capacity, rateTokens, per, tokens, at int64
	rem                                   uint64
}

// rawBucket writes one bucket's record field by field, valid or not: with
// a kind byte when kind >= 0 (version 2), without (version 1) otherwise.
func rawBucket(kind int, name string, nameLen uint64, n uint64, fs ...field) []byte {
	var b []byte
	if kind >= 0 {
		b = append(b, byte(kind))
	}
	b = binary.AppendUvarint(b, nameLen)
	b = append(b, name...)
	b = binary.AppendVarint(b, at0)
	b = binary.AppendUvarint(b, n)
	for _, f := range fs {
		b = binary.AppendVarint(b, f.capacity)
		b = binary.AppendVarint(b, f.rateTokens)
		b = binary.AppendVarint(b, f.per)
		b = binary.AppendVarint(b, f.tokens)
		b = binary.AppendVarint(b, f.at)
		b = binary.AppendUvarint(b, f.rem)
	}
	return b
}

// rec joins a version byte and bucket records.
func rec(version byte, buckets ...[]byte) []byte {
	return append([]byte{version}, bytes.Join(buckets, nil)...)
}

// okField is the limit five holding 2 tokens at at0.
var okField = field{capacity: int64(5 * tk), rateTokens: int64(tk), per: int64(3 * time.Second), tokens: int64(2 * tk), at: at0}

func TestDecodeVersion1(t *testing.T) {
	// A version-1 record, as the first format wrote it: no namespace kind,
	// every bucket a policy's.
	gold := field{capacity: int64(10 * tk), rateTokens: int64(tk), per: int64(time.Second), tokens: int64(7 * tk), at: at0 - 5, rem: 123}
	b := rec(recordVersionV1,
		rawBucket(-1, "default", 7, 1, okField),
		rawBucket(-1, "gold", 4, 2, gold, okField),
	)
	e, err := decode(b)
	require.NoError(t, err)
	requireSameBuckets(t, testEntry(
		bkt{PolicyNS("default"), at0, []bucket.Limit{fiveLimit}, []bucket.State{{Tokens: 2 * tk, At: at0}}},
		bkt{PolicyNS("gold"), at0, []bucket.Limit{{Capacity: 10 * tk, Rate: bucket.PerSecond(1)}, fiveLimit},
			[]bucket.State{{Tokens: 7 * tk, At: at0 - 5, Rem: 123}, {Tokens: 2 * tk, At: at0}}},
	), e)

	// It is written back as version 2, which reads the same.
	v2 := encode(nil, e)
	assert.Equal(t, byte(recordVersion), v2[0])
	again, err := decode(v2)
	require.NoError(t, err)
	requireSameBuckets(t, e, again)

	// A version-1 record holds no kind byte: one read as version 2 is
	// misread, and refused.
	b[0] = recordVersion
	_, err = decode(b)
	assert.ErrorIs(t, err, errCorrupt)
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
	with := func(f func(*field)) field {
		l := okField
		f(&l)
		return l
	}
	pol := func(n uint64, fs ...field) []byte { return rawBucket(int(KindPolicy), "default", 7, n, fs...) }
	valid := rec(recordVersion, pol(1, okField))
	_, err := decode(valid)
	require.NoError(t, err, "the base record is valid")
	_, err = decode(rec(recordVersion, pol(1, okField), rawBucket(int(KindCell), "", 0, 1, okField)))
	require.NoError(t, err, "two buckets in two namespaces are valid")

	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version byte alone", []byte{recordVersion}},
		{"version 1 byte alone", []byte{recordVersionV1}},
		{"version 0", rec(0, pol(1, okField))},
		{"version 3", rec(3, pol(1, okField))},
		{"version 255", rec(255, pol(1, okField))},
		{"trailing byte", append(rec(recordVersion, pol(1, okField)), 0)},
		{"unknown kind", rec(recordVersion, rawBucket(7, "default", 7, 1, okField))},
		{"kind all", rec(recordVersion, rawBucket(int(kindAll), "", 0, 1, okField))},
		{"policy without a name", rec(recordVersion, rawBucket(int(KindPolicy), "", 0, 1, okField))},
		{"version 1 policy without a name", rec(recordVersionV1, rawBucket(-1, "", 0, 1, okField))},
		{"policy name too long", rec(recordVersion, rawBucket(int(KindPolicy), strings.Repeat("n", 256), 256, 1, okField))},
		{"cell with a name", rec(recordVersion, rawBucket(int(KindCell), "x", 1, 1, okField))},
		{"two buckets in one namespace", rec(recordVersion, pol(1, okField), pol(1, okField))},
		{"two cell buckets", rec(recordVersion, rawBucket(int(KindCell), "", 0, 1, okField), rawBucket(int(KindCell), "", 0, 1, okField))},
		{"name longer than the record", rec(recordVersion, rawBucket(int(KindPolicy), "default", 1000, 1, okField))},
		{"name length overflows", rec(recordVersion, rawBucket(int(KindPolicy), "default", math.MaxUint64, 1, okField))},
		{"no limits", rec(recordVersion, pol(0))},
		{"too many limits", rec(recordVersion, pol(bucket.MaxLimits+1))},
		{"fewer limits than counted", rec(recordVersion, pol(2, okField))},
		{"zero capacity", rec(recordVersion, pol(1, with(func(l *field) { l.capacity, l.tokens = 0, 0 })))},
		{"capacity above the maximum", rec(recordVersion, pol(1, with(func(l *field) { l.capacity = int64(bucket.MaxTokens) + 1 })))},
		{"zero rate", rec(recordVersion, pol(1, with(func(l *field) { l.rateTokens = 0 })))},
		{"zero period", rec(recordVersion, pol(1, with(func(l *field) { l.per = 0 })))},
		{"negative period", rec(recordVersion, pol(1, with(func(l *field) { l.per = -1 })))},
		{"negative tokens", rec(recordVersion, pol(1, with(func(l *field) { l.tokens = -1 })))},
		{"tokens above capacity", rec(recordVersion, pol(1, with(func(l *field) { l.tokens = int64(5*tk) + 1 })))},
		{"remainder of a whole period", rec(recordVersion, pol(1, with(func(l *field) { l.rem = uint64(3 * time.Second) })))},
		{"name length not minimal", longer(valid, 2)},
		{"updated not minimal", longer(valid, 2+1+len("default"))},
		{"remainder not minimal", longer(valid, len(valid)-1)},
		{"varint too long", append([]byte{recordVersion, 0}, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)},
		{"varint overflows", append([]byte{recordVersion, 0}, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02)},
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

	// More buckets than any key can have.
	var many [][]byte
	for i := range maxSubs + 1 {
		name := fmt.Sprint("p", i)
		many = append(many, rawBucket(int(KindPolicy), name, uint64(len(name)), 1, okField))
	}
	_, err = decode(rec(recordVersion, many[:maxSubs]...))
	require.NoError(t, err, "maxSubs buckets")
	_, err = decode(rec(recordVersion, many...))
	assert.ErrorIs(t, err, errCorrupt, "maxSubs+1 buckets")
}

func TestPageRoundTrip(t *testing.T) {
	tb := newTable(1)
	s := &tb.shards[0]
	keys := map[string]*entry{}
	for name, e := range codecEntries() {
		e.key = name
		keys[name] = e
		putEntry(tb, s, 3, e)
	}
	page := s.appendPage([]byte("prefix"), 3, tb.specs)
	require.True(t, bytes.HasPrefix(page, []byte("prefix")), "appendPage appends")
	page = page[len("prefix"):]
	got := map[string][]byte{}
	require.NoError(t, decodePage(page, func(k, r []byte) error {
		got[string(k)] = r
		return nil
	}))
	require.Len(t, got, len(keys))
	for k, e := range keys {
		assert.Equal(t, encode(nil, e), got[k], k)
	}
	assert.Empty(t, s.appendPage(nil, 4, tb.specs), "an empty page")

	// A page cut anywhere but between two entries is refused.
	n := 0
	for i := 1; i < len(page); i++ {
		err := decodePage(page[:i], func(k, r []byte) error { return nil })
		if err == nil {
			n++
			continue
		}
		assert.ErrorIs(t, err, errCorrupt, "cut to %d bytes", i)
	}
	assert.Equal(t, len(keys)-1, n, "only the cuts between entries are valid pages")
}

func FuzzDecode(f *testing.F) {
	for _, e := range codecEntries() {
		f.Add(encode(nil, e))
	}
	f.Add([]byte{})
	f.Add([]byte{recordVersion})
	f.Add([]byte{recordVersionV1})
	f.Add(rec(recordVersionV1, rawBucket(-1, "default", 7, 1, okField)))
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
		for i, sb := range e.subs {
			require.NoError(t, sb.ns.Validate())
			for _, o := range e.subs[:i] {
				require.NotEqual(t, o.ns, sb.ns, "two buckets in one namespace")
			}
			require.Len(t, sb.states, len(sb.limits))
			for i, l := range sb.limits {
				require.NoError(t, l.Validate())
				s := sb.states[i]
				require.GreaterOrEqual(t, s.Tokens, bucket.Tokens(0))
				require.LessOrEqual(t, s.Tokens, l.Capacity)
				require.Less(t, s.Rem, uint64(l.Rate.Per))
			}
		}
		out := encode(nil, e)
		if b[0] == recordVersion {
			require.Equal(t, b, out, "a decoded record encodes to the same bytes")
			return
		}
		// A version-1 record is written back as version 2, holding the same.
		require.Equal(t, byte(recordVersionV1), b[0])
		for _, sb := range e.subs {
			require.Equal(t, KindPolicy, sb.ns.Kind, "version 1 has policy buckets only")
		}
		again, err := decode(out)
		require.NoError(t, err)
		requireSameBuckets(t, e, again)
		require.Equal(t, out, encode(nil, again))
	})
}

// TestAppendPagesMatchesAppendPage: the checkpoint's one pass over a shard
// (appendPages) encodes each wanted page exactly as appendPage does alone,
// entries in the same order, and leaves the other pages untouched.
func TestAppendPagesMatchesAppendPage(t *testing.T) {
	tb := newTable(1)
	t.Cleanup(tb.free)
	s := &tb.shards[0]
	i := 0
	for pg := range pagesPerShard {
		for name, e := range codecEntries() {
			e.key = fmt.Sprintf("%s-%d-%d", name, pg, i)
			i++
			putEntry(tb, s, pg, e)
		}
	}
	for _, want := range []uint16{1<<pagesPerShard - 1, 1 << 3, 0b1010_0000_0101_0010, 0} {
		var pages [pagesPerShard][]byte
		pages[7] = []byte("kept")
		s.appendPages(&pages, want, tb.specs)
		for pg := range pagesPerShard {
			alone := s.appendPage(nil, pg, tb.specs)
			require.NotEmpty(t, alone, "page %d has entries", pg)
			switch {
			case want&(1<<pg) != 0 && pg == 7:
				assert.Equal(t, append([]byte("kept"), alone...), pages[pg], "page %d appended to", pg)
			case want&(1<<pg) != 0:
				assert.Equal(t, alone, pages[pg], "page %d of %016b", pg, want)
			case pg == 7:
				assert.Equal(t, []byte("kept"), pages[pg], "page %d untouched", pg)
			default:
				assert.Empty(t, pages[pg], "page %d not wanted in %016b", pg, want)
			}
		}
	}
}
