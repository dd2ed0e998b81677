package respcompat

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// timedLimiter answers Throttle as stubLimiter does, and notes how long
// the call lasted by the clock, as seen from inside it.
type timedLimiter struct {
	stubLimiter
	inside time.Duration
}

func (l *timedLimiter) Throttle(key string, lim bucket.Limit, cost bucket.Tokens) (bucket.Decision, error) {
	t0 := time.Now()
	d, err := l.stubLimiter.Throttle(key, lim, cost)
	for time.Since(t0) == 0 { // a clock step at least
	}
	l.inside = time.Since(t0)
	return d, err
}

// decisionRecorder is a Metrics that keeps the durations it is given, one
// per take, and counts the outcomes.
type decisionRecorder struct {
	d                []time.Duration
	allowed, limited int
}

func (r *decisionRecorder) Decision(front, policy string, allowed, shadow bool, d time.Duration) {
	r.d = append(r.d, d)
	if allowed {
		r.allowed++
	} else {
		r.limited++
	}
}

func (r *decisionRecorder) Decisions(front, policy string, allowed, limited int, d time.Duration) {
	for range allowed + limited {
		r.d = append(r.d, d)
	}
	r.allowed += allowed
	r.limited += limited
}

// TestTakeDurationCoversTheCall: the duration a take reports to the
// metrics (timed on the monotonic clock alone) covers the limiter's call,
// and is not a reading from another origin.
func TestTakeDurationCoversTheCall(t *testing.T) {
	l := &timedLimiter{}
	rec := &decisionRecorder{}
	srv := New(l, Config{Metrics: rec})
	c := &conn{s: srv, store: srv.store, authed: true}
	c.exec([][]byte{[]byte("CL.THROTTLE"), []byte("k"), []byte("15"), []byte("30"), []byte("60")})
	require.Equal(t, benchReply, string(c.out))
	require.Len(t, rec.d, 1)
	assert.GreaterOrEqual(t, rec.d[0], l.inside, "the take's duration includes the limiter's call")
	assert.Less(t, rec.d[0], time.Minute, "a duration, not a time since some origin")
}
