package storage

// putEntry stores every bucket of e in shard s of tb, under a made-up hash
// that puts e.key in page pg: a test of the page format chooses the page.
func putEntry(tb *table, s *shard, pg int, e *entry) {
	h := uint64(pg*shardCount) | uint64(len(e.key))<<40 | uint64(e.key[0])<<32
	for _, b := range e.subs {
		r, first, slot := s.lookup(h, e.key, b.ns, tb.specs)
		b.fullAt = 1<<63 - 1
		tb.put(s, h, e.key, r, first, slot, b)
	}
}
