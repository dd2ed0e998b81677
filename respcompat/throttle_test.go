package respcompat

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// step is one command at an instant of the fake clock, and its reply.
type step struct {
	at   time.Duration // since t0; steps go forward in time
	args []any
	want []any
}

// runSteps sends each step's command at its instant through go-redis, on
// a new server, and checks the replies.
func runSteps(t *testing.T, steps []step) {
	t.Helper()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	var now time.Duration
	for i, s := range steps {
		require.GreaterOrEqual(t, s.at, now, "step %d goes back in time", i)
		ts.store.advance(s.at - now)
		now = s.at
		got, err := c.Do(ctx, s.args...).Slice()
		require.NoError(t, err, "step %d: %v", i, s.args)
		assert.Equal(t, s.want, got, "step %d at %v: %v", i, s.at, s.args)
	}
}

func i64s(v ...int64) []any {
	out := make([]any, len(v))
	for i, n := range v {
		out[i] = n
	}
	return out
}

// The replies redis-cell's GCRA gives, worked out by hand from its source
// (redis-cell-impl/src/lib.rs: tat, emission interval T = period/count,
// tolerance (max_burst+1)*T; seconds rounded up when the remainder is at
// least 1 ms).
func TestThrottleLikeRedisCell(t *testing.T) {
	t.Parallel()
	const (
		t0 = time.Duration(0)
		t1 = time.Second
		t2 = 1500 * time.Millisecond
		t3 = 2 * time.Second
		t4 = 2*time.Second + 999500*time.Microsecond // 0.5 ms short of 3 s
	)
	throttle := func(q ...any) []any { return append([]any{"CL.THROTTLE", "user123", 15, 30, 60}, q...) }
	t.Run("15 per 30/60s", func(t *testing.T) {
		t.Parallel()
		steps := []step{
			// README: a new key allows, 16 = 15+1 the limit, 15 left,
			// full again in T = 2 s.
			{t0, throttle(), i64s(0, 16, 15, -1, 2)},
		}
		for i := int64(14); i >= 0; i-- {
			steps = append(steps, step{t0, throttle(), i64s(0, 16, i, -1, 2*(16-i))})
		}
		steps = append(steps,
			step{t0, throttle(), i64s(1, 16, 0, 2, 32)}, // empty: one token in T
			step{t1, throttle(), i64s(1, 16, 0, 1, 31)},
			step{t2, throttle(), i64s(1, 16, 0, 1, 31)}, // 0.5 s and 30.5 s round up
			step{t3, throttle(), i64s(0, 16, 0, -1, 32)},
			step{t3, throttle(0), i64s(0, 16, 0, -1, 32)},  // quantity 0 peeks
			step{t3, throttle(17), i64s(1, 16, 0, -1, 32)}, // never fits: retry -1
			step{t4, throttle(), i64s(1, 16, 0, 1, 31)},    // 1.0005 s: under 1 ms is not rounded up
		)
		runSteps(t, steps)
	})

	// redis-cell's own unit test (it_rate_limits): limit 5, 1 per second.
	t.Run("redis-cell it_rate_limits", func(t *testing.T) {
		t.Parallel()
		cell := func(q int) []any { return []any{"CL.THROTTLE", "foo", 4, 1, 1, q} }
		ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
		runSteps(t, []step{
			{0, cell(6), i64s(1, 5, 5, -1, 0)}, // never larger than the maximum
			{0, cell(1), i64s(0, 5, 4, -1, 1)},
			{0, cell(1), i64s(0, 5, 3, -1, 2)},
			{0, cell(1), i64s(0, 5, 2, -1, 3)},
			{0, cell(1), i64s(0, 5, 1, -1, 4)},
			{0, cell(1), i64s(0, 5, 0, -1, 5)},
			{0, cell(1), i64s(1, 5, 0, 1, 5)},
			{ms(3000), cell(1), i64s(0, 5, 2, -1, 3)},
			{ms(3100), cell(1), i64s(0, 5, 1, -1, 4)}, // reset 3.9 s
			{ms(4000), cell(1), i64s(0, 5, 1, -1, 4)},
			{ms(8000), cell(1), i64s(0, 5, 4, -1, 1)},
			{ms(9500), cell(1), i64s(0, 5, 4, -1, 1)},
			{ms(9500), cell(0), i64s(0, 5, 4, -1, 1)},
			{ms(9500), cell(2), i64s(0, 5, 2, -1, 3)},
			{ms(9500), cell(5), i64s(1, 5, 2, 3, 3)},
		})
	})

	// redis-cell's end-to-end test (tests/e2e.rs): max_burst 0, 1 per 2 s.
	t.Run("redis-cell e2e", func(t *testing.T) {
		t.Parallel()
		e2e := []any{"CL.THROTTLE", "user123", 0, 1, 2, 1}
		runSteps(t, []step{
			{0, e2e, i64s(0, 1, 0, -1, 2)},
			{0, e2e, i64s(1, 1, 0, 2, 2)},
			{2 * time.Second, e2e, i64s(0, 1, 0, -1, 2)},
		})
	})
}

func TestThrottleArguments(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	const usage = "-Cell error: Store error: Usage: cl.throttle <key> <max_burst> <count per period> <period> [<quantity>]\r\n"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"CL.THROTTLE"}, usage},
		{[]string{"CL.THROTTLE", "k", "1", "2"}, usage},
		{[]string{"CL.THROTTLE", "k", "1", "2", "3", "4", "5"}, usage},
		{[]string{"CL.THROTTLE", "k", "x", "1", "1"}, "-Cell error: Store error: Couldn't parse as integer: x\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "1", "1", "1.5"}, "-Cell error: Store error: Couldn't parse as integer: 1.5\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", " 1", "1"}, "-Cell error: Store error: Couldn't parse as integer:  1\r\n"},
		{[]string{"CL.THROTTLE", "k", "9223372036854775808", "1", "1"}, "-Cell error: Store error: Couldn't parse as integer: 9223372036854775808\r\n"},
		{[]string{"CL.THROTTLE", "k", "+-1", "1", "1"}, "-Cell error: Store error: Couldn't parse as integer: +-1\r\n"},
		{[]string{"CL.THROTTLE", "k", "-", "1", "1"}, "-Cell error: Store error: Couldn't parse as integer: -\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "0", "60"}, "-Cell error: Store error: Zero rates are not supported\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "1", "0"}, "-Cell error: Store error: Zero rates are not supported\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "2000000000", "1"}, "-Cell error: Store error: Zero rates are not supported\r\n"},
		{[]string{"CL.THROTTLE", "k", "-1", "1", "1"}, "-Cell error: Store error: max_burst must not be negative\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "-1", "1"}, "-Cell error: Store error: count must not be negative\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "1", "-1"}, "-Cell error: Store error: period must not be negative\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "1", "1", "-1"}, "-Cell error: Store error: quantity must not be negative\r\n"},
		{[]string{"CL.THROTTLE", "k", "1000000000000", "1", "1"}, "-Cell error: Store error: max_burst is more than the maximum of 999999999999\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "1000000000001", "1000000"}, "-Cell error: Store error: count is more than the maximum of 1000000000000\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "1", "9223372037"}, "-Cell error: Store error: period is more than the maximum of 2562047h47m16s\r\n"},
		// Rust's integer parse takes a '+' and leading zeros.
		{[]string{"cl.throttle", "k1", "+1", "01", "+0001", "+0"}, "*5\r\n:0\r\n:2\r\n:2\r\n:-1\r\n:0\r\n"},
		{[]string{"CL.THROTTLE", "k2", "1", "1", "1", "-0"}, "*5\r\n:0\r\n:2\r\n:2\r\n:-1\r\n:0\r\n"},
		{[]string{"CL.THROTTLE", "k3", "1", "1", "1", "9223372036854775807"}, "*5\r\n:1\r\n:2\r\n:2\r\n:-1\r\n:0\r\n"},
		{[]string{"CL.THROTTLE", "k4", "999999999999", "1000000000", "1", "999999999999"}, "*5\r\n:0\r\n:1000000000000\r\n:1\r\n:-1\r\n:1000\r\n"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rc.do(tt.args...), "%q", tt.args)
	}
}

func TestParseCellInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"+42", 42, true}, {"-42", -42, true}, {"007", 7, true},
		{"-0", 0, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"-9223372036854775808", -9223372036854775808, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"99999999999999999999", 0, false},
		{"", 0, false}, {"+", 0, false}, {"-", 0, false}, {"+-1", 0, false}, {"--1", 0, false},
		{"1 ", 0, false}, {"1e3", 0, false}, {"0x10", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseCellInt([]byte(tt.in))
		assert.Equal(t, tt.ok, ok, "%q", tt.in)
		assert.Equal(t, tt.want, got, "%q", tt.in)
	}
}

func TestParseInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"-42", -42, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"-9223372036854775808", -9223372036854775808, true},
		{"9223372036854775808", 0, false},
		// Redis's string2ll: no '+', no leading zero, no "-0".
		{"+1", 0, false}, {"01", 0, false}, {"-0", 0, false}, {"", 0, false}, {"-", 0, false}, {" 1", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseInt([]byte(tt.in))
		assert.Equal(t, tt.ok, ok, "%q", tt.in)
		assert.Equal(t, tt.want, got, "%q", tt.in)
	}
}

func TestCellSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{0, 0},
		{999 * time.Microsecond, 0},
		{time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + 999*time.Microsecond, 1},
		{time.Second + time.Millisecond, 2},
		{31*time.Second + 500*time.Millisecond, 32},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, cellSeconds(tt.d), "%v", tt.d)
	}
}

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
	assert.Zero(t, ts.store.Len())
}
