package respcompat

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestTake(t *testing.T) {
	t.Parallel()
	take := func(args ...any) []any { return append([]any{"BUCKET.TAKE"}, args...) }
	res := func(allowed, limit, remaining, retry, reset int64, policy string) []any {
		return append(i64s(allowed, limit, remaining, retry, reset), policy)
	}
	steps := []step{
		// default: 15 tokens, 1 every 3 s.
		{0, take("joe"), res(1, 15, 14, 0, 3000, "default")},
		{0, take("joe", "14"), res(1, 15, 0, 0, 45000, "default")},
		{0, take("joe"), res(0, 15, 0, 3000, 45000, "default")},
		{0, take("joe", "16"), res(0, 15, 0, -1, 45000, "default")}, // never fits
		{1500 * time.Millisecond, take("joe", "0.5"), res(1, 15, 0, 0, 45000, "default")},
		{1500 * time.Millisecond, take("joe", "0"), res(1, 15, 0, 0, 45000, "default")}, // a peek
		{1500 * time.Millisecond, take("joe", "0.000001"), res(0, 15, 0, 1, 45000, "default")},
		// Named policies, in any case of the word POLICY.
		{2 * time.Second, take("ann", "POLICY", "burst"), res(1, 5, 4, 0, 1000, "burst")},
		{2 * time.Second, take("ann", "2", "policy", "burst"), res(1, 5, 2, 0, 3000, "burst")},
		// An empty name is the default policy, as ?policy= over HTTP.
		{2 * time.Second, take("pat", "POLICY", ""), res(1, 15, 14, 0, 3000, "default")},
		// A shadow policy allows what it would refuse, and says it would.
		{2 * time.Second, take("sam", "POLICY", "shadow"), res(1, 1, 0, 0, 60000, "shadow")},
		{2 * time.Second, take("sam", "POLICY", "shadow"), res(1, 1, 0, 60000, 60000, "shadow")},
		// Even a cost over its capacity: GET /{key} answers 200 too.
		{2 * time.Second, take("sam", "5", "POLICY", "shadow"), res(1, 1, 0, -1, 60000, "shadow")},
		// Several limits: the one with the fewest tokens left shows.
		{2 * time.Second, take("dan", "4", "POLICY", "daily"), res(1, 10, 6, 0, 4*4320000, "daily")},
		// daily is 10 tokens at 1/s and 20 at 20/d (one every 4320 s). The
		// first limit refuses; a refused take takes from neither.
		{2 * time.Second, take("eve", "10", "POLICY", "daily"), res(1, 10, 0, 0, 10*4320000, "daily")},
		{2 * time.Second, take("eve", "POLICY", "daily"), res(0, 10, 0, 1000, 10*4320000, "daily")},
		// 10 s later the first is full again and the second has earned
		// 10/4320 of a token: it is full in 86400-10 s.
		{12 * time.Second, take("eve", "10", "POLICY", "daily"), res(1, 10, 0, 0, 86390000, "daily")},
		// 10 s more: the second limit refuses and shows, and its wait is
		// the retry (a 429 with Retry-After: 4300 over HTTP).
		{22 * time.Second, take("eve", "POLICY", "daily"), res(0, 20, 0, 4300000, 86380000, "daily")},
		// A cost over one limit's capacity never fits.
		{22 * time.Second, take("eve", "15", "POLICY", "daily"), res(0, 20, 0, -1, 86380000, "daily")},
	}
	runSteps(t, steps)
}

func TestTakeErrors(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"BUCKET.TAKE"}, "-ERR wrong number of arguments for 'bucket.take' command\r\n"},
		{[]string{"BUCKET.TAKE", "k", "abc"}, "-ERR invalid cost: \"abc\" is not a decimal number\r\n"},
		{[]string{"BUCKET.TAKE", "k", "-1"}, "-ERR invalid cost: \"-1\" is negative\r\n"},
		{[]string{"BUCKET.TAKE", "k", "POLICY", "nope"}, "-ERR unknown policy 'nope'\r\n"},
		{[]string{"BUCKET.TAKE", "k", "2", "policy", "gold"}, "-ERR unknown policy 'gold'\r\n"},
		{[]string{"BUCKET.TAKE", "k", "POLICY", "BURST"}, "-ERR unknown policy 'BURST'\r\n"}, // names are case-sensitive
		{[]string{"BUCKET.TAKE", "k", "1", "POLICY"}, "-ERR syntax error\r\n"},
		{[]string{"BUCKET.TAKE", "k", "POLICY"}, "-ERR syntax error\r\n"},
		{[]string{"BUCKET.TAKE", "k", "1", "FOO", "x"}, "-ERR syntax error\r\n"},
		{[]string{"BUCKET.TAKE", "k", "POLICY", "burst", "x"}, "-ERR syntax error\r\n"},
		{[]string{"BUCKET.TAKE", "k", "1", "2"}, "-ERR syntax error\r\n"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rc.do(tt.args...), "%q", tt.args)
	}
	assert.Zero(t, ts.size(t), "no failed BUCKET.TAKE made a bucket")
}
