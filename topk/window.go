package topk

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Defaults of a zero Options: 1024 counters an interval, 60 intervals of 5 s,
// so a window of up to 5 minutes.
const (
	DefaultCounters  = 1024
	DefaultInterval  = 5 * time.Second
	DefaultIntervals = 60
)

// Options configure a Window. The zero value is valid: the defaults above.
type Options struct {
	// Counters is the number of counters of each interval's sketch: the
	// items an interval tells apart. Memory is at most about Intervals x
	// Counters x (250 bytes + the length of a key), whatever the number of
	// items: 16.7 MB measured for the defaults and keys of 12 bytes.
	Counters int
	// Interval is the time each sketch covers: the precision of a window.
	Interval time.Duration
	// Intervals is the number of sketches in the ring; Intervals x Interval
	// is the longest window (Span).
	Intervals int
}

// Window counts items over a sliding window of time: a ring of sketches,
// one per Interval, the oldest reused for the newest. Time is given by the
// caller. A Window is safe for concurrent use; Add holds one mutex for the
// time of a map lookup and a heap step.
type Window struct {
	interval time.Duration
	counters int

	mu      sync.Mutex // guards the fields below
	epoch   time.Time  // the start of interval 0: the first time given
	started bool
	last    int64 // the latest interval seen: time does not go back
	ring    []slot
}

// slot is the sketch of interval n.
type slot struct {
	n int64
	s *Sketch // nil until first used
}

// NewWindow returns an empty window.
func NewWindow(opts Options) *Window {
	if opts.Counters <= 0 {
		opts.Counters = DefaultCounters
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Intervals <= 0 {
		opts.Intervals = DefaultIntervals
	}
	w := &Window{interval: opts.Interval, counters: opts.Counters, ring: make([]slot, opts.Intervals)}
	for i := range w.ring {
		w.ring[i].n = -1
	}
	return w
}

// Span returns the longest window Top answers for: Interval x Intervals.
func (w *Window) Span() time.Duration { return w.interval * time.Duration(len(w.ring)) }

// Interval returns the time each sketch covers.
func (w *Window) Interval() time.Duration { return w.interval }

// Counters returns the number of counters in use, over every interval: at
// most Counters x Intervals, however many items were added.
func (w *Window) Counters() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, sl := range w.ring {
		if sl.s != nil {
			n += sl.s.Len()
		}
	}
	return n
}

// intervalLocked returns the number of now's interval. A time before the
// latest seen counts in the latest interval: a clock that goes back does
// not reopen old intervals.
func (w *Window) intervalLocked(now time.Time) int64 {
	if !w.started {
		w.epoch, w.started = now, true
	}
	n := int64(now.Sub(w.epoch) / w.interval)
	if n < w.last {
		return w.last
	}
	w.last = n
	return n
}

// Add counts one sighting of it at time now.
func (w *Window) Add(now time.Time, it Item) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.intervalLocked(now)
	sl := &w.ring[n%int64(len(w.ring))]
	if sl.s == nil {
		sl.s = NewSketch(w.counters)
	} else if sl.n != n {
		sl.s.Reset()
	}
	sl.n = n
	sl.s.Add(it)
}

// Top returns the limit items counted most over the window that ends at
// now, most first (ties by policy, then key). The window is rounded up to
// whole intervals, counting the current one, and cut to Span. A merged
// count is an upper bound: the sum of the item's counts in the intervals
// where it has a counter, plus, for each other interval, the most it can
// have been seen there (the interval's Floor); Error is the most the
// count can exceed the truth by.
func (w *Window) Top(now time.Time, window time.Duration, limit int) []Entry {
	if limit <= 0 || window <= 0 {
		return nil
	}
	want := int64((window + w.interval - 1) / w.interval)
	want = min(want, int64(len(w.ring)))
	type part struct {
		entries []Entry
		floor   uint64
	}
	var parts []part
	w.mu.Lock()
	cur := w.intervalLocked(now)
	for _, sl := range w.ring {
		if sl.s != nil && sl.n > cur-want && sl.n <= cur {
			parts = append(parts, part{sl.s.Entries(make([]Entry, 0, sl.s.Len())), sl.s.Floor()})
		}
	}
	w.mu.Unlock()

	// Merge outside the lock: Add does not wait for it.
	type agg struct {
		count, lower, floors uint64 // floors: the floors of the parts it is in
	}
	var total uint64 // every part's floor
	n := 0
	for _, p := range parts {
		n = max(n, len(p.entries))
	}
	merged := make(map[Item]agg, n)
	for _, p := range parts {
		total += p.floor
		for _, e := range p.entries {
			a := merged[e.Item]
			a.count += e.Count
			a.lower += e.Count - e.Error
			a.floors += p.floor
			merged[e.Item] = a
		}
	}
	out := make([]Entry, 0, len(merged))
	for it, a := range merged {
		upper := a.count + total - a.floors
		out = append(out, Entry{Item: it, Count: upper, Error: upper - a.lower})
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Policy, b.Policy); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return slices.Clip(out)
}
