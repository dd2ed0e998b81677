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
		ts.clock.Advance(s.at - now)
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
		{[]string{"CL.THROTTLE", "k", "1000000000000", "1", "1"}, "-Cell error: Store error: max_burst is more than the maximum of 999999999999\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "1000000000001", "1000000"}, "-Cell error: Store error: count is more than the maximum of 1000000000000\r\n"},
		{[]string{"CL.THROTTLE", "k", "1", "1", "9223372037"}, "-Cell error: Store error: period is more than the maximum of 2562047h47m16s\r\n"},
		// Rust's integer parse takes a '+' and leading zeros.
		{[]string{"cl.throttle", "k1", "+1", "01", "+0001", "+0"}, "*5\r\n:0\r\n:2\r\n:2\r\n:-1\r\n:0\r\n"},
		{[]string{"CL.THROTTLE", "k2", "1", "1", "1", "-0"}, "*5\r\n:0\r\n:2\r\n:2\r\n:-1\r\n:0\r\n"},
		// A negative quantity gives back (TestThrottleGivesBack); to a new
		// key, which is full, it gives nothing.
		{[]string{"CL.THROTTLE", "k5", "1", "1", "1", "-1"}, "*5\r\n:0\r\n:2\r\n:2\r\n:-1\r\n:0\r\n"},
		{[]string{"CL.THROTTLE", "k5", "1", "1", "1", "-9223372036854775808"}, "*5\r\n:0\r\n:2\r\n:2\r\n:-1\r\n:0\r\n"},
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
