package storage

import (
	"errors"
	"math/bits"
	"sync/atomic"

	"github.com/bucketd/bucketd/bucket"
)

// A batch of takes (TakeBatch) costs less than its takes one by one: it
// locks each shard it needs once, reads the clock once, waits for the disk
// once, and looks its keys up in two passes, the first of which touches
// every key's index slot, so that the cache misses of a table of millions
// of keys overlap instead of following one another.

// stackBatch is the largest batch whose scratch space lives on the stack.
const stackBatch = 64

// TakeBatch implements Store. It holds the locks of every shard of the
// batch's keys, taken in ascending order (as Clear takes them), while it
// makes the takes in their order at one instant.
func (db *DB) TakeBatch(ns Namespace, reqs []TakeReq, out []TakeResult) []TakeResult {
	base := len(out)
	out = append(out, make([]TakeResult, len(reqs))...)
	res := out[base:]

	var hbuf [stackBatch]uint64
	hashes := hbuf[:0]
	if len(reqs) > stackBatch {
		hashes = make([]uint64, 0, len(reqs))
	}
	var locked [shardCount / 64]uint64 // the shards to lock, as a bit set
	valid := 0
	for i := range reqs {
		q := &reqs[i]
		if err := checkArgs(ns, q.Key, q.Limits, nil); err != nil {
			res[i].Err = err
			hashes = append(hashes, 0)
			continue
		}
		h := db.table.hash(q.Key)
		hashes = append(hashes, h)
		locked[(h%shardCount)/64] |= 1 << (h % 64)
		valid++
	}
	if valid == 0 {
		return out
	}
	db.lockShards(&locked)
	if db.closed.Load() {
		db.unlockShards(&locked)
		for i := range res {
			if res[i].Err == nil {
				res[i].Err = bucket.ErrClosed
			}
		}
		return out
	}
	db.prefetch(reqs, res, hashes)
	t, off := db.nowOffset()
	var last uint64 // the seq of the batch's last log record
	for i := range reqs {
		if res[i].Err != nil {
			continue
		}
		q, h := &reqs[i], hashes[i]
		s := &db.table.shards[h%shardCount]
		d, seq, err := db.takeLocked(s, h, ns, q.Key, q.Limits, q.Cost, nil, t, off)
		res[i].Decision = d
		if err != nil {
			res[i].Err = db.durable(0, err)
			continue
		}
		if seq != 0 {
			last = seq
			res[i].Err = errPending
		}
	}
	db.unlockShards(&locked)
	// One wait for the disk covers every record of the batch.
	err := db.durable(last, nil)
	for i := range res {
		if res[i].Err == errPending {
			res[i].Err = err
		}
	}
	return out
}

// sink keeps prefetch's loads from being optimized away.
var sink atomic.Uint64

// errPending marks, within TakeBatch, a take whose record is not yet known
// to be durable.
var errPending = errors.New("storage: pending")

// lockShards locks the shards of the bit set, in ascending order.
func (db *DB) lockShards(set *[shardCount / 64]uint64) {
	for w, word := range set {
		for ; word != 0; word &= word - 1 {
			db.table.shards[w*64+bits.TrailingZeros64(word)].mu.Lock()
		}
	}
}

// unlockShards unlocks the shards of the bit set.
func (db *DB) unlockShards(set *[shardCount / 64]uint64) {
	for w, word := range set {
		for ; word != 0; word &= word - 1 {
			db.table.shards[w*64+bits.TrailingZeros64(word)].mu.Unlock()
		}
	}
}

// prefetch loads the index slot, then the first record, then the stored
// key, of each key of the batch, one pass each, so that within a pass no
// load waits for another and the processor has many misses in flight. The
// shards are locked. It changes nothing; what it reads goes to sink.
func (db *DB) prefetch(reqs []TakeReq, res []TakeResult, hashes []uint64) {
	if len(reqs) < 2 {
		return
	}
	var acc uint64
	for pass := range 3 {
		for i, h := range hashes {
			if res[i].Err != nil {
				continue
			}
			s := &db.table.shards[h%shardCount]
			v := s.home(h)
			switch {
			case pass == 0:
				acc += v
			case v == 0: // no record to load
			case pass == 1:
				acc += s.recs[int(uint32(v))-1].hash
			default:
				acc += uint64(s.arena[s.recs[int(uint32(v))-1].keyOff])
			}
		}
	}
	sink.Store(acc)
}
