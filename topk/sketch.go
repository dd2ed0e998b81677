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
}

// Sketch is a space-saving sketch: k counters in a min-heap by count, and
// an index from item to counter. The zero value is unusable: use
// NewSketch. A Sketch is not safe for concurrent use.
type Sketch struct {
	k    int
	heap []counter      // a min-heap by count: heap[0] is the smallest
	pos  map[Item]int32 // item -> its index in heap
}

// NewSketch returns a sketch of k counters (k < 1 means 1).
func NewSketch(k int) *Sketch {
	k = max(k, 1)
	return &Sketch{k: k, heap: make([]counter, 0, k), pos: make(map[Item]int32, k)}
}

// Add counts one sighting of it. When it has no counter and every counter
// is taken, it takes over the smallest counter, whose count (plus one)
// becomes its count and whose count becomes its error: space-saving's rule.
// Add copies the strings of it that it keeps.
func (s *Sketch) Add(it Item) {
	if i, ok := s.pos[it]; ok {
		s.heap[i].count++
		s.down(int(i))
		return
	}
	it = Item{Policy: strings.Clone(it.Policy), Key: strings.Clone(it.Key)}
	if len(s.heap) < s.k {
		s.heap = append(s.heap, counter{item: it, count: 1})
		s.pos[it] = int32(len(s.heap) - 1)
		s.up(len(s.heap) - 1)
		return
	}
	min := &s.heap[0]
	delete(s.pos, min.item)
	*min = counter{item: it, count: min.count + 1, err: min.count}
	s.pos[it] = 0
	s.down(0)
}

// Floor returns the most times an item without a counter can have been
// seen: the smallest count when every counter is taken, else 0.
func (s *Sketch) Floor() uint64 {
	if len(s.heap) < s.k {
		return 0
	}
	return s.heap[0].count
}

// Len returns the number of counters in use: at most k.
func (s *Sketch) Len() int { return len(s.heap) }

// Cap returns k, the number of counters.
func (s *Sketch) Cap() int { return s.k }

// Reset forgets every count, keeping the memory.
func (s *Sketch) Reset() {
	clear(s.heap[:cap(s.heap)]) // drop the strings
	s.heap = s.heap[:0]
	clear(s.pos)
}

// Entries appends every counted item to dst, in no order.
func (s *Sketch) Entries(dst []Entry) []Entry {
	for _, c := range s.heap {
		dst = append(dst, Entry{Item: c.item, Count: c.count, Error: c.err})
	}
	return dst
}

func (s *Sketch) less(i, j int) bool { return s.heap[i].count < s.heap[j].count }

func (s *Sketch) swap(i, j int) {
	h := s.heap
	h[i], h[j] = h[j], h[i]
	s.pos[h[i].item] = int32(i)
	s.pos[h[j].item] = int32(j)
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
