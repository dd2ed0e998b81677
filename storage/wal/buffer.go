package wal

// The pending records are kept in chunks of chunkSize bytes, not in one
// slice that grows: at hundreds of thousands of records a second, one
// slice regrown each interval (and dropped once over a size) copied tens
// of MB a second, and its growth was 14 % of a store benchmark's profile.
// A record never spans two chunks; a larger one has a chunk of its own.

// chunkSize is the capacity of a chunk of pending records.
const chunkSize = 256 << 10

// maxFreeChunks is how many empty chunks a Log keeps for reuse (16 MiB).
const maxFreeChunks = 64

// records is a sequence of framed records, in chunks, in order of seq.
type records struct {
	chunks [][]byte
	n      int // their bytes, in all
}

// add frames the record (seq, payload) into the last chunk, or a new one
// from free when it does not fit, and returns the free chunks left.
func (r *records) add(seq uint64, payload []byte, free [][]byte) [][]byte {
	need := recordHeaderLen + len(payload)
	if k := len(r.chunks); k == 0 || cap(r.chunks[k-1])-len(r.chunks[k-1]) < need {
		var c []byte
		if n := len(free); n > 0 && need <= chunkSize {
			c, free = free[n-1], free[:n-1]
		} else {
			c = make([]byte, 0, max(chunkSize, need))
		}
		r.chunks = append(r.chunks, c)
	}
	last := &r.chunks[len(r.chunks)-1]
	*last = appendRecord(*last, seq, payload)
	r.n += need
	return free
}

// recycle returns r's chunks of chunkSize to free, up to maxFreeChunks,
// emptied, and returns free.
func (r *records) recycle(free [][]byte) [][]byte {
	for _, c := range r.chunks {
		if cap(c) == chunkSize && len(free) < maxFreeChunks {
			free = append(free, c[:0])
		}
	}
	return free
}

// from returns r's bytes after the first skip, as subslices of its chunks
// (r.chunks itself when skip is 0: a caller whose r may grow meanwhile
// copies it).
func (r records) from(skip int) [][]byte {
	if skip == 0 {
		return r.chunks
	}
	var out [][]byte
	for _, c := range r.chunks {
		if skip >= len(c) {
			skip -= len(c)
			continue
		}
		out = append(out, c[skip:])
		skip = 0
	}
	return out
}
