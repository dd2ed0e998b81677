package limiter

import (
	"time"

	"github.com/bucketd/bucketd/topk"
)

// TopOptions configure the window of refused keys (Limiter.Top). The zero
// value is valid: topk's defaults (5 minutes in intervals of 5 s, 1024
// counters each) on time.Now.
type TopOptions struct {
	topk.Options
	// Now is the clock of the window; nil means time.Now.
	Now func() time.Time
}

// top counts refusals by key and policy over a sliding window, in memory
// that does not grow with the number of keys.
type top struct {
	w   *topk.Window
	now func() time.Time
}

func newTop(opts TopOptions) *top {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &top{w: topk.NewWindow(opts.Options), now: opts.Now}
}

// refused records a refusal of key's take under policy ("" for
// CL.THROTTLE), whether enforced or a shadow policy's. It copies what it
// keeps of key.
func (t *top) refused(policy, key string) {
	t.w.Add(t.now(), topk.Item{Policy: policy, Key: key})
}

// Top returns the limit keys refused most over the last window, most
// first: a key under a policy, or under CL.THROTTLE when Policy is "".
// Refusals of shadow policies count. The window is rounded up to the
// window's intervals and cut to TopSpan. Each Count is at least the true
// number of refusals and at most Error more (space-saving's bound).
func (l *Limiter) Top(window time.Duration, limit int) []topk.Entry {
	return l.top.w.Top(l.top.now(), window, limit)
}

// TopSpan returns the longest window Top answers for.
func (l *Limiter) TopSpan() time.Duration { return l.top.w.Span() }
