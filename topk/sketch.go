// Package topk finds the items seen most often in a stream, in memory that
// does not grow with the number of distinct items: the keys refused most,
// for "who is limited now".
//
// A Sketch is the space-saving algorithm (Metwally, Agrawal and El Abbadi,
// "Efficient computation of frequent and top-k elements in data streams",
// 2005) with a fixed number of counters. A Window is a ring of Sketches, one
// per interval, merged when asked, so that it answers for a sliding window
// of recent intervals.
//
// Counts are upper bounds: an item's Count is at least the number of times
// it was seen, and at most Error more. An item seen more than the smallest
// counter is always among the counted ones.
package topk

import "strings"

// Item is what is counted: a key under a policy (or under a namespace of
// its own, such as "cl.throttle").
type Item struct {
	Policy string
	Key    string
}

// Entry is an item and its count.
type Entry struct {
	Item
	// Count is an upper bound of the number of times Item was seen.
	Count uint64
	// Error bounds the overestimate: Item was seen at least Count - Error
	// times.
	Error uint64
}

// counter is one of a Sketch's counters.
type counter struct {
	item  Item
	count uint64
	err   uint64
	at    int32 // its place in Sketch.heap
}

// Sketch is a space-saving sketch: k counters, a min-heap of them by count,
// and an index from item to counter. A counter keeps its slot while the
// heap moves: the heap holds slots, so that a step of the heap moves two
// numbers and never touches the index (at 10 000 keys refused alike, the
// index's updates were most of an Add). The zero value is unusable: use
// NewSketch. A Sketch is not safe for concurrent use.
type Sketch struct {
	k        int
	counters []counter      // by slot
	heap     []int32        // slots, a min-heap by count: heap[0] is the smallest
	pos      map[Item]int32 // item -> its slot
}

// NewSketch returns a sketch of k counters (k < 1 means 1).
func NewSketch(k int) *Sketch {
	k = max(k, 1)
	return &Sketch{k: k, counters: make([]counter, 0, k), heap: make([]int32, 0, k), pos: make(map[Item]int32, k)}
}

// Add counts one sighting of it. When it has no counter and every counter
// is taken, it takes over the smallest counter, whose count (plus one)
// becomes its count and whose count becomes its error: space-saving's rule.
// Add copies the strings of it that it keeps.
func (s *Sketch) Add(it Item) {
	if c, ok := s.pos[it]; ok {
		s.counters[c].count++
		s.down(int(s.counters[c].at))
		return
	}
	it = Item{Policy: strings.Clone(it.Policy), Key: strings.Clone(it.Key)}
	if len(s.counters) < s.k {
		c := int32(len(s.counters))
		s.counters = append(s.counters, counter{item: it, count: 1, at: c})
		s.heap = append(s.heap, c)
		s.pos[it] = c
		s.up(int(c))
		return
	}
	c := s.heap[0]
	min := &s.counters[c]
	delete(s.pos, min.item)
	*min = counter{item: it, count: min.count + 1, err: min.count, at: 0}
	s.pos[it] = c
	s.down(0)
}

// Floor returns the most times an item without a counter can have been
// seen: the smallest count when every counter is taken, else 0.
func (s *Sketch) Floor() uint64 {
	if len(s.heap) < s.k {
		return 0
	}
	return s.counters[s.heap[0]].count
}

// Len returns the number of counters in use: at most k.
func (s *Sketch) Len() int { return len(s.heap) }

// Cap returns k, the number of counters.
func (s *Sketch) Cap() int { return s.k }

// Reset forgets every count, keeping the memory.
func (s *Sketch) Reset() {
	clear(s.counters[:cap(s.counters)]) // drop the strings
	s.counters, s.heap = s.counters[:0], s.heap[:0]
	clear(s.pos)
}

// Entries appends every counted item to dst, in no order.
func (s *Sketch) Entries(dst []Entry) []Entry {
	for _, c := range s.counters {
		dst = append(dst, Entry{Item: c.item, Count: c.count, Error: c.err})
	}
	return dst
}

func (s *Sketch) less(i, j int) bool {
	return s.counters[s.heap[i]].count < s.counters[s.heap[j]].count
}

func (s *Sketch) swap(i, j int) {
	h := s.heap
	h[i], h[j] = h[j], h[i]
	s.counters[h[i]].at = int32(i)
	s.counters[h[j]].at = int32(j)
}

func (s *Sketch) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			return
		}
		s.swap(i, p)
		i = p
	}
}

func (s *Sketch) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			return
		}
		s.swap(i, m)
		i = m
	}
}
