package limiter

import (
	"slices"
	"sync"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// ThrottleReq is one CL.THROTTLE of a batch (ThrottleBatch): cost tokens
// from key's bucket under lim.
type ThrottleReq struct {
	Key   string
	Limit bucket.Limit
	Cost  bucket.Tokens
}

// ThrottleResult is the outcome of one CL.THROTTLE of a batch: what
// Throttle would have returned.
type ThrottleResult struct {
	bucket.Decision
	Err error
}

// ThrottleBatch runs Throttle on each of reqs, in order, as one step: it
// holds the read locks of the keys' stripes (taken once each, in ascending
// order, as Atomic takes its write locks) for the batch, so no transaction
// comes between two of its takes, and asks the store for the takes at
// once. The outcomes, counts, refusals and watches are those of the calls
// one after the other. It appends reqs[i]'s outcome to out, in order, and
// returns it. A key is only read during the call: what is kept of it is
// copied.
func (l *Limiter) ThrottleBatch(reqs []ThrottleReq, out []ThrottleResult) []ThrottleResult {
	if len(reqs) == 0 {
		return out
	}
	sc := batchPool.Get().(*batchScratch)
	defer batchPool.Put(sc)

	idx := sc.stripes[:0]
	for _, q := range reqs {
		idx = append(idx, l.txn.index(q.Key))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	sc.stripes = idx
	for _, i := range idx {
		l.txn.stripes[i].RLock()
	}
	defer func() {
		for _, i := range idx {
			l.txn.stripes[i].RUnlock()
		}
	}()

	// Each distinct limit is checked and interned once: a batch mostly
	// repeats one.
	takes := sc.takes[:0]
	base := len(out)
	out = append(out, make([]ThrottleResult, len(reqs))...)
	res := out[base:]
	var last bucket.Limit
	var lastLimits []bucket.Limit
	var lastErr error
	for i, q := range reqs {
		if lastLimits == nil && lastErr == nil || q.Limit != last {
			last, lastErr, lastLimits = q.Limit, q.Limit.Validate(), nil
			if lastErr == nil {
				lastLimits = l.intern(q.Limit)
			}
		}
		if lastErr != nil {
			res[i].Err = lastErr
			continue
		}
		takes = append(takes, storage.TakeReq{Key: q.Key, Limits: lastLimits, Cost: q.Cost})
	}
	sc.takes = takes
	got := l.store.TakeBatch(storage.CellNS, takes, sc.results[:0])
	sc.results = got
	j := 0
	for i, q := range reqs {
		if res[i].Err != nil {
			continue
		}
		d, err := l.throttled(q.Key, q.Limit, q.Cost, got[j].Decision, got[j].Err)
		j++
		if changed(d.Allowed, q.Cost, err) {
			l.txn.touch(q.Key)
		}
		res[i] = ThrottleResult{d, err}
	}
	clear(sc.takes) // drop the keys: the pool outlives them
	return out
}

// batchScratch is ThrottleBatch's reusable memory.
type batchScratch struct {
	stripes []int
	takes   []storage.TakeReq
	results []storage.TakeResult
}

var batchPool = sync.Pool{New: func() any { return new(batchScratch) }}
