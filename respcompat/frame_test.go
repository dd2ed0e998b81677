package respcompat

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/redcon"
)

func TestFramer(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", MaxCommandSize)
	tests := []struct {
		name string
		in   string
		ends []int // offsets just past each complete command
		err  error
	}{
		{"one RESP command", "*1\r\n$4\r\nPING\r\n", []int{14}, nil},
		{"two commands", "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", []int{14, 34}, nil},
		{"inline", "PING\r\nPING\nEC", []int{6, 11}, nil},
		{"empty lines", "\r\n\n", []int{2, 3}, nil},
		{"partial", "*2\r\n$4\r\nECHO\r\n$3\r\nab", nil, nil},
		{"count not a number", "*x\r\n", nil, errMultibulkLen},
		{"count empty", "*\r\n", nil, errMultibulkLen},
		{"count zero: an empty command", "*0\r\n", []int{4}, nil},
		{"count negative: an empty command", "*-1\r\n*00\r\n", []int{5, 10}, nil},
		{"count only a minus", "*-\r\n", nil, errMultibulkLen},
		{"count two minus", "*--1\r\n", nil, errMultibulkLen},
		{"count with a plus", "*+1\r\n", nil, errMultibulkLen},
		{"count LF without CR", "*1\n", nil, errMultibulkLen},
		{"count CR without LF", "*1\rx", nil, errMultibulkLen},
		{"too many arguments", "*1025\r\n", nil, errMultibulkLen},
		{"a huge count", "*2000000000\r\n", nil, errMultibulkLen},
		{"endless count", "*" + strings.Repeat("1", 100), nil, errMultibulkLen},
		{"most arguments", "*1024\r\n", nil, nil},
		{"no dollar", "*1\r\nfoo\r\n", nil, protocolError("expected '$', got 'f'")},
		{"bulk negative", "*1\r\n$-1\r\n", nil, errBulkLen},
		{"bulk minus zero", "*1\r\n$-0\r\n", nil, errBulkLen},
		{"bulk not a number", "*1\r\n$x\r\n", nil, errBulkLen},
		{"bulk claims 2 GB", "*1\r\n$2000000000\r\n", nil, errBulkLen},
		{"bulk over the limit", "*1\r\n$" + strconv.Itoa(MaxCommandSize) + "\r\n", nil, errBulkLen},
		{"bulk without CRLF", "*1\r\n$4\r\nPINGxx", nil, errBulkLen},
		{"bulk with LF only", "*1\r\n$4\r\nPING\n", nil, errBulkLen},
		{"inline too big", big + "\r\n", nil, errBigInline},
		{"inline endless", big + "a", nil, errBigInline},
		{"inline at the limit so far", big, nil, nil},
		{"error after a command", "PING\r\n*1\r\n$-5\r\n", []int{6}, errBulkLen},
	}
	for _, tt := range tests {
		// Fed whole, and one byte at a time: the result must not depend on
		// how the stream is cut.
		for _, chunk := range []int{len(tt.in), 1, 7} {
			var f framer
			var ends []int
			var err error
			for off := 0; off < len(tt.in) && err == nil; off += chunk {
				b := []byte(tt.in[off:min(off+chunk, len(tt.in))])
				var end int
				end, err = f.scan(b)
				if end > 0 {
					// Report each command end once: scan gives the last.
					for _, e := range commandEnds(tt.in[:off+end]) {
						if len(ends) == 0 || e > ends[len(ends)-1] {
							ends = append(ends, e)
						}
					}
				}
			}
			assert.Equal(t, tt.err, err, "%s (chunks of %d)", tt.name, chunk)
			assert.Equal(t, tt.ends, ends, "%s (chunks of %d)", tt.name, chunk)
		}
	}
}

// commandEnds finds the command boundaries of a well-formed prefix with a
// fresh framer, one byte at a time.
func commandEnds(s string) []int {
	var f framer
	var ends []int
	for i := range len(s) {
		if end, err := f.scan([]byte{s[i]}); err == nil && end > 0 {
			ends = append(ends, i+1)
		}
	}
	return ends
}

// A request over a limit is answered with Redis's error, and the
// connection is closed, as soon as the header shows it; the commands
// before it are answered first.
func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	tests := []struct {
		name, in, want string
	}{
		{"claims a 2 GB argument", "*1\r\n$2000000000\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"claims 2e9 arguments", "*2000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"over MaxArgs", "*1025\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"negative length", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"not a dollar", "*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n"},
		{"count is not a number", "*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"commands before are answered", "PING\r\n" + encode("ECHO", "hi") + "*1\r\n$99999999999\r\n" + encode("PING"),
			"+PONG\r\n$2\r\nhi\r\n-ERR Protocol error: invalid bulk length\r\n"},
		{"unbalanced quotes", "PING\r\nECHO \"a\r\nPING\r\n", "+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n"},
	}
	for _, tt := range tests {
		rc := ts.raw(t)
		rc.send(tt.in)
		assert.Equal(t, tt.want, rc.expectEOF(), tt.name)
	}
}

// The limits are on the whole command: 1024 arguments, 64 KiB.
func TestCommandSizeLimits(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	ctx := ctxT(t)
	c := ts.client(t)

	keys := make([]string, MaxArgs-1)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	n, err := c.Del(ctx, keys...).Result()
	require.NoError(t, err, "1024 arguments are allowed")
	assert.Zero(t, n)

	// "*2\r\n$4\r\nECHO\r\n$N\r\n" + N bytes + "\r\n" is 19+len("N")+N bytes.
	room := MaxCommandSize - 19 - 5
	echo, err := c.Echo(ctx, strings.Repeat("a", room)).Result()
	require.NoError(t, err, "a command of exactly MaxCommandSize bytes is allowed")
	assert.Len(t, echo, room)

	// Each error closes the connection: a new client for each.
	err = ts.client(t).Echo(ctx, strings.Repeat("a", room+1)).Err()
	require.Error(t, err)
	assert.Equal(t, "ERR Protocol error: invalid bulk length", err.Error())

	err = ts.client(t).Del(ctx, append(keys, "one too many")...).Err()
	require.Error(t, err)
	assert.Equal(t, "ERR Protocol error: invalid multibulk length", err.Error())

	rc := ts.raw(t)
	rc.send(strings.Repeat("a", MaxCommandSize-2) + "\r\n")
	assert.Equal(t, "-ERR unknown command '"+strings.Repeat("a", 128)+"', with args beginning with: \r\n", rc.reply(), "an inline command of MaxCommandSize bytes is allowed")
	rc.send(strings.Repeat("a", MaxCommandSize) + "\r\n")
	assert.Equal(t, "-ERR Protocol error: too big inline request\r\n", rc.expectEOF())
}

func TestSplitInline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"   ", nil, false},
		{"a b  c", []string{"a", "b", "c"}, false},
		{`"a b" 'c d'`, []string{"a b", "c d"}, false},
		{`"\x41\x4a\x4A\xz"`, []string{"AJJxz"}, false},
		{`"\n\r\t\b\a\\\"q"`, []string{"\n\r\t\b\a\\\"q"}, false},
		{`'a\'b' 'a\nb'`, []string{"a'b", `a\nb`}, false},
		{`a"b c"d`, nil, true},
		{`"abc`, nil, true},
		{`'abc`, nil, true},
		{`"" ''`, []string{"", ""}, false},
		{"a\tb", []string{"a", "b"}, false},
	}
	for _, tt := range tests {
		got, err := splitInline([]byte(tt.line), nil)
		if tt.err {
			assert.ErrorIs(t, err, errUnbalanced, "%q", tt.line)
			continue
		}
		require.NoError(t, err, "%q", tt.line)
		assert.Equal(t, tt.want, strs(got), "%q", tt.line)
	}
}

// BenchmarkScan frames a pipeline of 16 CL.THROTTLEs read at once.
func BenchmarkScan(b *testing.B) {
	batch := []byte(strings.Repeat(benchCmd, pipeline))
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		var f framer
		if end, err := f.scan(batch); err != nil || end != len(batch) {
			b.Fatal(end, err)
		}
	}
}

// TestWholeCommandAtTheLimits: a command read whole (wholeCommand's one
// pass) is framed as the same command fed a byte at a time (the state
// machine), at and just past each limit, and in the forms the one pass
// leaves to the state machine.
func TestWholeCommandAtTheLimits(t *testing.T) {
	t.Parallel()
	args := func(n int) []string {
		a := make([]string, n)
		for i := range a {
			a[i] = "k"
		}
		return a
	}
	// "*2\r\n$4\r\nECHO\r\n$N\r\n" + N bytes + "\r\n" is 19+len("N")+N bytes.
	room := MaxCommandSize - 19 - 5
	for _, c := range []struct {
		name, in string
		whole    bool // wholeCommand frames it
		err      error
	}{
		{"a command", encode("CL.THROTTLE", "k", "15", "30", "60"), true, nil},
		{"MaxArgs arguments", encode(args(MaxArgs)...), true, nil},
		{"MaxArgs+1 arguments", encode(args(MaxArgs + 1)...), false, errMultibulkLen},
		{"MaxCommandSize bytes", encode("ECHO", strings.Repeat("a", room)), true, nil},
		{"MaxCommandSize+1 bytes", encode("ECHO", strings.Repeat("a", room+1)), false, errBulkLen},
		{"leading zeros", "*01\r\n$0004\r\nPING\r\n", true, nil},
		{"an empty argument", encode("ECHO", ""), true, nil},
		{"a 9 in a header", encode("ECHO", "123456789"), true, nil},
		{"18 digits", "*1\r\n$000000000000000004\r\nPING\r\n", true, nil},
		{"19 digits", "*1\r\n$0000000000000000004\r\nPING\r\n", false, errBulkLen},
		{"empty", "*0\r\n", false, nil},
		{"null", "*-1\r\n", false, nil},
		{"signed count", "*+1\r\n$4\r\nPING\r\n", false, errMultibulkLen},
		{"no digits", "*\r\n", false, errMultibulkLen},
		{"a bare \\n", "*1\n$4\r\nPING\r\n", false, errMultibulkLen},
		{"a long body", "*1\r\n$3\r\nPING\r\n", false, errBulkLen},
		{"no \\r after the body", "*1\r\n$4\r\nPINGx\n", false, errBulkLen},
		{"a short body", "*1\r\n$5\r\nPING\r\n*1\r\n", false, errBulkLen},
		{"not a '$'", "*1\r\n:4\r\nPING\r\n", false, protocolError("expected '$', got ':'")},
		{"cut short", "*1\r\n$4\r\nPIN", false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := []byte(c.in)
			n := wholeCommand(in)
			if c.whole {
				assert.Equal(t, len(in), n, "framed in one pass")
				_, want, _, _, err := redcon.ReadNextCommand(in, nil)
				require.NoError(t, err)
				args, n := splitCommand(in, nil)
				assert.Equal(t, len(in), n, "split in one pass")
				assert.Equal(t, strs(want), strs(args), "into redcon's arguments")
			} else {
				assert.Zero(t, n, "left to the state machine")
			}
			var whole, byByte framer
			end, err := whole.scan(in)
			assert.Equal(t, c.err, err)
			byteEnd, ends := 0, 0
			var byteErr error
			for i := range in {
				e, err := byByte.scan(in[i : i+1])
				if e > 0 {
					byteEnd, ends = i+1, ends+1
				}
				if err != nil {
					byteErr = err
					break
				}
			}
			assert.Equal(t, byteErr, err, "the same error fed a byte at a time")
			assert.Equal(t, byteEnd, end, "the same end fed a byte at a time")
			if c.whole {
				assert.Equal(t, len(in), end)
			}
		})
	}
}
