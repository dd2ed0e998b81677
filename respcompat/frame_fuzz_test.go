package respcompat

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/redcon"
)

// FuzzFramer checks the framer on any stream: it never panics, never holds
// a command over the limit, finds the same command ends and error however
// the stream is cut, and every command it reports is one that redcon parses
// whole, into the arguments that splitCommand finds.
func FuzzFramer(f *testing.F) {
	for _, seed := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*2\r\n$4\r\nECHO\r\n$0\r\n\r\nPING\r\n",
		"*5\r\n$11\r\nCL.THROTTLE\r\n$7\r\nuser123\r\n$2\r\n15\r\n$2\r\n30\r\n$2\r\n60\r\n",
		"SET a \"b c\"\r\n",
		"*-1\r\n*0\r\n",
		"*1\r\n$2000000000\r\n",
		"*1\r\n$-1\r\n",
		"\r\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Fed whole.
		var whole framer
		wholeEnd, wholeErr := whole.scan(in)
		require.LessOrEqual(t, whole.size, MaxCommandSize)
		require.GreaterOrEqual(t, wholeEnd, 0)
		require.LessOrEqual(t, wholeEnd, len(in))

		// Fed a byte at a time.
		var byByte framer
		var ends []int
		var byteErr error
		for i := range in {
			end, err := byByte.scan(in[i : i+1])
			require.LessOrEqual(t, byByte.size, MaxCommandSize)
			if end > 0 {
				ends = append(ends, i+1)
			}
			if err != nil {
				byteErr = err
				break
			}
		}
		assert.Equal(t, wholeErr, byteErr, "the error does not depend on how the stream is cut")
		last := 0
		if len(ends) > 0 {
			last = ends[len(ends)-1]
		}
		assert.Equal(t, last, wholeEnd, "nor does the last command end")

		// Each complete command parses whole with redcon.
		start := 0
		for _, end := range ends {
			cmd := in[start:end]
			start = end
			if emptyCommand(cmd) > 0 {
				continue // an empty command, which the server skips
			}
			complete, args, _, rest, err := redcon.ReadNextCommand(cmd, nil)
			if err != nil {
				continue // inline quoting errors are the server's to answer
			}
			if len(args) == 0 {
				continue // a blank line
			}
			assert.True(t, complete, "command %q is complete", cmd)
			assert.Empty(t, rest, "command %q is exactly one command", cmd)
			if cmd[0] == '*' {
				// run splits it as redcon does, in one pass when it can.
				got, n := splitCommand(cmd, nil)
				assert.Equal(t, len(cmd), n, "command %q is split whole", cmd)
				assert.Equal(t, strs(args), strs(got), "command %q has redcon's arguments", cmd)
			}
		}
	})
}

// strs returns args as strings (nil for none), so that an empty argument
// is one however it was sliced.
func strs(args [][]byte) []string {
	var out []string
	for _, a := range args {
		out = append(out, string(a))
	}
	return out
}
