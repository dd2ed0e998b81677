package topk

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// t0 is the first instant of every test; the others are offsets from it.
var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func item(key string) Item { return Item{Policy: "p", Key: key} }

// zipf returns n draws of keys "k0".."k<keys-1>", key i drawn about in
// proportion to 1/(i+1)^1.1, from a fixed seed, and the exact counts.
func zipf(n, keys int, seed uint64) ([]Item, map[Item]uint64) {
	r := rand.New(rand.NewPCG(seed, seed))
	z := rand.NewZipf(r, 1.1, 1, uint64(keys-1))
	stream := make([]Item, n)
	exact := map[Item]uint64{}
	for i := range stream {
		stream[i] = item("k" + strconv.FormatUint(z.Uint64(), 10))
		exact[stream[i]]++
	}
	return stream, exact
}

// trueTop returns the n items counted most in exact, most first.
func trueTop(exact map[Item]uint64, n int) []Item {
	var items []Item
	for it := range exact {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b Item) int {
		if c := cmp.Compare(exact[b], exact[a]); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return items[:n]
}

// checkBounds checks that every entry brackets the truth: Count-Error <=
// exact <= Count.
func checkBounds(t *testing.T, entries []Entry, exact map[Item]uint64) {
	t.Helper()
	for _, e := range entries {
		assert.LessOrEqual(t, exact[e.Item], e.Count, "%s: count is an upper bound", e.Key)
		assert.GreaterOrEqual(t, exact[e.Item], e.Count-e.Error, "%s: count-error is a lower bound", e.Key)
	}
}

func TestSketchExactBelowCapacity(t *testing.T) {
	s := NewSketch(4)
	for _, k := range []string{"a", "b", "a", "c", "a", "b"} {
		s.Add(item(k))
	}
	got := s.Entries(nil)
	slices.SortFunc(got, func(a, b Entry) int { return cmp.Compare(a.Key, b.Key) })
	assert.Equal(t, []Entry{{item("a"), 3, 0}, {item("b"), 2, 0}, {item("c"), 1, 0}}, got)
	assert.Zero(t, s.Floor(), "a sketch with a free counter has missed nothing")
}

func TestSketchReplacesTheSmallest(t *testing.T) {
	s := NewSketch(2)
	for _, k := range []string{"a", "a", "a", "b", "c"} {
		s.Add(item(k))
	}
	// c took b's counter (1): count 2, error 1.
	got := s.Entries(nil)
	slices.SortFunc(got, func(a, b Entry) int { return cmp.Compare(a.Key, b.Key) })
	assert.Equal(t, []Entry{{item("a"), 3, 0}, {item("c"), 2, 1}}, got)
	assert.Equal(t, uint64(2), s.Floor())
}

func TestSketchCopiesKeys(t *testing.T) {
	b := []byte("alice")
	s := NewSketch(2)
	s.Add(Item{Policy: "p", Key: unsafeString(b)})
	copy(b, "mallo")
	assert.Equal(t, "alice", s.Entries(nil)[0].Key)
}

// TestSketchZipf: the true top 10 of a skewed stream of 1M takes over 100k
// keys (a fifth of that under -race) are the sketch's top 10, each count within its bound, and the
// overestimate at most the smallest counter.
// unsafeString is b as a string that changes with b, as a key that points
// into a request's memory does.
func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }

func TestSketchZipf(t *testing.T) {
	t.Parallel()
	n, keys := 1_000_000, 100_000
	if raceEnabled {
		n, keys = 200_000, 20_000
	}
	stream, exact := zipf(n, keys, 1)
	s := NewSketch(1024)
	for _, it := range stream {
		s.Add(it)
	}
	entries := s.Entries(nil)
	checkBounds(t, entries, exact)
	for _, e := range entries {
		assert.LessOrEqual(t, e.Count-exact[e.Item], s.Floor(), "%s: overestimate at most the min counter", e.Key)
	}
	slices.SortFunc(entries, func(a, b Entry) int { return cmp.Compare(b.Count, a.Count) })
	var got []Item
	for _, e := range entries[:10] {
		got = append(got, e.Item)
	}
	assert.ElementsMatch(t, trueTop(exact, 10), got)
}

// TestSketchMemoryFixed: a million distinct keys (a tenth under -race) use
// no more counters, and no bigger index, than ten thousand.
func TestSketchMemoryFixed(t *testing.T) {
	t.Parallel()
	n := 1_000_000
	if raceEnabled {
		n = 100_000
	}
	s := NewSketch(1024)
	for i := range n {
		s.Add(item(strconv.Itoa(i)))
		if i == 9_999 || i == n-1 {
			assert.Equal(t, 1024, s.Len())
			assert.Len(t, s.pos, 1024)
			assert.Equal(t, 1024, cap(s.heap))
		}
	}
}

func TestWindowZipfOverIntervals(t *testing.T) {
	t.Parallel()
	w := NewWindow(Options{Counters: 512, Interval: time.Second, Intervals: 10})
	n := 300_000
	if raceEnabled {
		n = 100_000
	}
	stream, exact := zipf(n, 50_000, 2)
	for i, it := range stream { // spread evenly over 10 s
		w.Add(t0.Add(time.Duration(i)*10*time.Second/time.Duration(len(stream))), it)
	}
	now := t0.Add(10*time.Second - time.Nanosecond)
	top := w.Top(now, 10*time.Second, 10)
	require.Len(t, top, 10)
	checkBounds(t, top, exact)
	var got []Item
	for _, e := range top {
		got = append(got, e.Item)
	}
	assert.ElementsMatch(t, trueTop(exact, 10), got)
	assert.LessOrEqual(t, w.Counters(), 512*10)
}

func TestWindowExpiry(t *testing.T) {
	w := NewWindow(Options{Counters: 8, Interval: 5 * time.Second, Intervals: 4}) // 20 s
	t1, t2, t3 := t0.Add(7*time.Second), t0.Add(21*time.Second), t0.Add(40*time.Second)
	for range 3 {
		w.Add(t0, item("old")) // interval 0
	}
	w.Add(t1, item("new")) // interval 1

	assert.Equal(t, []Entry{{item("old"), 3, 0}, {item("new"), 1, 0}}, w.Top(t1, 20*time.Second, 10))
	assert.Equal(t, []Entry{{item("new"), 1, 0}}, w.Top(t1, 5*time.Second, 10), "the last interval only")
	assert.Equal(t, []Entry{{item("old"), 3, 0}}, w.Top(t1, 20*time.Second, 1), "limit")

	// At 21 s the window of 20 s is intervals 1..4: interval 0 is out.
	assert.Equal(t, []Entry{{item("new"), 1, 0}}, w.Top(t2, 20*time.Second, 10))
	assert.Equal(t, []Entry{{item("new"), 1, 0}}, w.Top(t2, time.Hour, 10), "cut to the span")
	// Interval 4 reuses interval 0's sketch: old is gone from it.
	w.Add(t2, item("newer"))
	assert.Equal(t, []Entry{{item("new"), 1, 0}, {item("newer"), 1, 0}}, w.Top(t2, 20*time.Second, 10))

	assert.Empty(t, w.Top(t3, 20*time.Second, 10), "all expired")
	assert.Empty(t, w.Top(t3, 0, 10))
	assert.Empty(t, w.Top(t3, time.Second, 0))
}

func TestWindowClockBack(t *testing.T) {
	w := NewWindow(Options{Interval: time.Second, Intervals: 3})
	w.Add(t0.Add(5*time.Second), item("a"))
	w.Add(t0, item("a")) // the clock went back: counted in the latest interval
	assert.Equal(t, []Entry{{item("a"), 2, 0}}, w.Top(t0, time.Second, 10))
}

// TestWindowMergeBound: an item that lost its counter in one interval is
// counted there as that interval's floor, and its error says so.
func TestWindowMergeBound(t *testing.T) {
	w := NewWindow(Options{Counters: 2, Interval: time.Second, Intervals: 2})
	t1 := t0.Add(time.Second)
	for _, k := range []string{"a", "b", "c", "c"} { // c takes a's counter: a floor of 1
		w.Add(t0, item(k))
	}
	for _, k := range []string{"a", "a"} {
		w.Add(t1, item(k))
	}
	exact := map[Item]uint64{item("a"): 3, item("b"): 1, item("c"): 2}
	top := w.Top(t1, 2*time.Second, 10)
	checkBounds(t, top, exact)
	require.NotEmpty(t, top)
	assert.Equal(t, Entry{item("a"), 3, 1}, top[0], "2 counted, and up to interval 0's floor of 1")
}

func TestNewWindowDefaults(t *testing.T) {
	w := NewWindow(Options{})
	assert.Equal(t, 5*time.Minute, w.Span())
	assert.Equal(t, DefaultInterval, w.Interval())
	assert.Zero(t, w.Counters())
}

// BenchmarkWindowAddParallel measures the refusal path under a flood: every
// goroutine adds to one window, with a few hot keys among many.
func BenchmarkWindowAddParallel(b *testing.B) {
	w := NewWindow(Options{})
	stream, _ := zipf(1<<16, 100_000, 3)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		now := t0
		for pb.Next() {
			w.Add(now, stream[i&(len(stream)-1)])
			i++
		}
	})
}

func BenchmarkWindowTop(b *testing.B) {
	w := NewWindow(Options{})
	stream, _ := zipf(1<<20, 1_000_000, 4)
	for i, it := range stream { // spread over the whole span
		w.Add(t0.Add(time.Duration(i)*w.Span()/time.Duration(len(stream))), it)
	}
	now := t0.Add(w.Span() - 1)
	b.ReportAllocs()
	for b.Loop() {
		w.Top(now, w.Span(), 20)
	}
}

func FuzzSketch(f *testing.F) {
	f.Add([]byte("aabcaab"), uint8(2))
	f.Add([]byte("abcdefgabcabca"), uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, k uint8) {
		s := NewSketch(int(k%16) + 1)
		exact := map[Item]uint64{}
		for _, c := range stream {
			it := item(string(c))
			s.Add(it)
			exact[it]++
		}
		entries := s.Entries(nil)
		checkBounds(t, entries, exact)
		counted := map[Item]bool{}
		for _, e := range entries {
			counted[e.Item] = true
			if e.Count-exact[e.Item] > s.Floor() {
				t.Fatalf("%q: overestimate %d above the floor %d", e.Key, e.Count-exact[e.Item], s.Floor())
			}
		}
		for it, n := range exact { // an item seen more than the floor has a counter
			if n > s.Floor() && !counted[it] {
				t.Fatalf("%q seen %d times, above the floor %d, has no counter", it.Key, n, s.Floor())
			}
		}
	})
}

// BenchmarkSketchAddUniform measures a flood refused over many keys, none
// much hotter than another (bench/http.sh's 10 000 random keys): most adds
// take over the smallest counter, the sketch's dearest step.
func BenchmarkSketchAddUniform(b *testing.B) {
	s := NewSketch(DefaultCounters)
	items := make([]Item, 10_000)
	for i := range items {
		items[i] = item("user:" + strconv.Itoa(i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		s.Add(items[rng.IntN(len(items))])
	}
}

// TestSketchHeapAndIndexAgree: after every Add of a stream that fills the
// counters and then takes them over, the heap is a min-heap by count, each
// counter knows its place in it, and the index finds each item's counter.
func TestSketchHeapAndIndexAgree(t *testing.T) {
	t.Parallel()
	s := NewSketch(64)
	stream, _ := zipf(5_000, 500, 5)
	for n, it := range stream {
		s.Add(it)
		for i, c := range s.heap {
			if !assert.Equal(t, int32(i), s.counters[c].at, "add %d: counter %d's place", n, c) {
				return
			}
			if i > 0 && !assert.LessOrEqual(t, s.counters[s.heap[(i-1)/2]].count, s.counters[c].count, "add %d: heap order at %d", n, i) {
				return
			}
		}
		assert.Len(t, s.pos, len(s.counters))
		for c, ctr := range s.counters {
			if !assert.Equal(t, int32(c), s.pos[ctr.item], "add %d: index of %v", n, ctr.item) {
				return
			}
		}
	}
}
