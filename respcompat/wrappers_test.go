package respcompat

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
)

// The wrappers below stand for what a test of this package cannot make the
// real store do: fail to write its file (only package storage's own tests
// can break its disk), or take long over a SAVE. Each embeds the real
// *limiter.Limiter, so every method it does not override is the real one,
// and an override calls the real method and changes only what the failure
// changes. They keep no state of their own and compute nothing: the
// buckets, the maths and every number in a reply still come from the real
// limiter and store, so they cannot drift from them as the hand-written
// fake did.

// errDisk is what the store returns when a write of its file failed: the
// failure wrapped in bucket.ErrNotDurable (storage.DB.durable, Save and
// Health wrap it the same way).
var errDisk = fmt.Errorf("%w: write bucketd.db: no space left on device", bucket.ErrNotDurable)

// diskDown is the real limiter over a disk that refuses every write, under
// --sync always. Take and Throttle make their change for real and, when it
// changed a bucket (an allowed take of a positive cost: refusals and peeks
// write nothing, so the store does not wait for the disk then), return
// errDisk with the real result, as the store does when its commit fails.
// Save saves for real, then reports errDisk. Ready reports errDisk, as the
// store's Health does from a failed write until one succeeds.
type diskDown struct{ *limiter.Limiter }

func (d diskDown) Take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	res, err := d.Limiter.Take(key, policy, cost)
	if err == nil && cost > 0 && res.Allowed {
		err = errDisk
	}
	return res, err
}

func (d diskDown) Throttle(key string, l bucket.Limit, cost bucket.Tokens) (bucket.Decision, error) {
	dec, err := d.Limiter.Throttle(key, l, cost)
	if err == nil && cost > 0 && dec.Allowed {
		err = errDisk
	}
	return dec, err
}

func (d diskDown) ThrottleBatch(reqs []limiter.ThrottleReq, out []limiter.ThrottleResult) []limiter.ThrottleResult {
	base := len(out)
	out = d.Limiter.ThrottleBatch(reqs, out)
	for i, q := range reqs {
		if r := &out[base+i]; r.Err == nil && q.Cost > 0 && r.Allowed {
			r.Err = errDisk
		}
	}
	return out
}

func (d diskDown) Save() error {
	if err := d.Limiter.Save(); err != nil {
		return err
	}
	return errDisk
}

func (d diskDown) Ready() error { return errDisk }

// unready is the real limiter whose store reports a failed write: Ready,
// and nothing else, answers as the store's Health does then.
type unready struct{ *limiter.Limiter }

func (unready) Ready() error { return errDisk }

// heldSave is the real limiter whose Save waits for the test: it sends on
// entered, waits until release is closed, then saves for real. It holds a
// SAVE or BGSAVE while the test looks at the server, which the real Save,
// over in a moment, gives no time to do.
type heldSave struct {
	*limiter.Limiter
	entered chan struct{} // receives once per Save as it starts; buffered
	release chan struct{} // Save waits until it is closed
}

func holdSaves(l *limiter.Limiter) *heldSave {
	return &heldSave{Limiter: l, entered: make(chan struct{}, 8), release: make(chan struct{})}
}

func (h *heldSave) Save() error {
	h.entered <- struct{}{}
	<-h.release
	return h.Limiter.Save()
}

// errInternal wraps no sentinel of package bucket: a failure no store has
// on purpose, which the front answers with its text and logs.
var errInternal = errors.New("disk on fire")

// broken is the real limiter whose Delete and Scan fail with errInternal.
type broken struct{ *limiter.Limiter }

func (broken) Delete(keys ...string) (int, error) { return 0, errInternal }

func (broken) Scan(cursor uint64, count int) ([]string, uint64, error) {
	return nil, 0, errInternal
}

// logBuffer is an io.Writer for a test's logger, safe to read while the
// server's goroutines write to it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
