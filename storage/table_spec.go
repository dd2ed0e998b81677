package storage

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bucketd/bucketd/bucket"
)

// specs interns what a bucket is taken under, its namespace and its limits,
// so that a bucket stores a 4-byte id, not a slice: every bucket under one
// policy (or one set of CL.THROTTLE arguments) shares one spec. An id is
// counted by the buckets that hold it and reused once none does, so limits
// that callers vary do not grow the table for ever.
type specs struct {
	mu   sync.Mutex        // guards ids, free, n, and each spec's dead and key; serializes growth of chunks
	ids  map[string]uint32 // the encoding of (namespace, limits) -> id
	free []uint32          // ids no bucket holds
	n    uint32            // ids handed out so far
	// chunks is read without mu: a spec's fields are set before its id is
	// handed out, and a holder of the id reaches it through a shard lock.
	chunks atomic.Pointer[[]*specChunk]
}

const specChunkLen = 256

type specChunk [specChunkLen]spec

// spec is one interned (namespace, limits).
type spec struct {
	ns     Namespace
	limits []bucket.Limit // never changed while the spec is held
	refs   atomic.Int64   // buckets that hold the id
	key    string         // its key in specs.ids
	dead   bool           // freed: in specs.free
}

func newSpecs() *specs {
	t := &specs{ids: make(map[string]uint32)}
	t.chunks.Store(&[]*specChunk{})
	return t
}

// get returns the spec of id, which the caller's bucket holds.
func (t *specs) get(id uint32) *spec {
	return (*t.chunks.Load())[id/specChunkLen].at(id)
}

func (c *specChunk) at(id uint32) *spec { return &c[id%specChunkLen] }

// specKey appends the encoding of (ns, limits) to b.
func specKey(b []byte, ns Namespace, limits []bucket.Limit) []byte {
	b = appendNS(b, ns)
	for _, l := range limits {
		b = binary.AppendVarint(b, int64(l.Capacity))
		b = binary.AppendVarint(b, int64(l.Rate.Tokens))
		b = binary.AppendVarint(b, int64(l.Rate.Per))
	}
	return b
}

// intern returns the id of (ns, limits), held once more by the caller,
// who must release it when its bucket goes. scratch is a buffer to reuse;
// it is returned grown.
func (t *specs) intern(ns Namespace, limits []bucket.Limit, scratch []byte) (uint32, []byte) {
	scratch = specKey(scratch[:0], ns, limits)
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[string(scratch)]; ok {
		t.get(id).refs.Add(1)
		return id, scratch
	}
	var id uint32
	if n := len(t.free); n > 0 {
		id, t.free = t.free[n-1], t.free[:n-1]
	} else {
		id = t.n
		t.n++
		if cs := *t.chunks.Load(); int(id/specChunkLen) >= len(cs) {
			grown := append(slices.Clip(cs), new(specChunk))
			t.chunks.Store(&grown)
		}
	}
	sp := t.get(id)
	sp.ns = Namespace{Kind: ns.Kind, Name: strings.Clone(ns.Name)} // the caller's may be a request's memory
	sp.limits, sp.key, sp.dead = slices.Clone(limits), string(scratch), false
	sp.refs.Store(1)
	t.ids[sp.key] = id
	return id, scratch
}

// release drops one hold of id; the last frees it for reuse.
func (t *specs) release(id uint32) {
	sp := t.get(id)
	if sp.refs.Add(-1) > 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// An intern (under mu) may have taken it again since, or another
	// release freed it already.
	if sp.refs.Load() != 0 || sp.dead {
		return
	}
	delete(t.ids, sp.key)
	sp.dead, sp.key, sp.limits = true, "", nil
	t.free = append(t.free, id)
}

// held returns how many ids are held, for tests.
func (t *specs) held() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ids)
}
