package respcompat

import (
	"log/slog"
	"testing"

	"github.com/bucketd/bucketd/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Store errors become replies in one place (writeError): a closed store is
// "shutting down", and an internal failure is answered with its text and
// logged. The connection survives either.
func TestStoreErrors(t *testing.T) {
	t.Parallel()
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		ts := start(t, Config{})
		rc := ts.raw(t)
		assert.Equal(t, ":0\r\n", rc.do("HSET", "k", "tokens", "1"), "a bucket, before the store closes")
		require.NoError(t, ts.db.Close())
		for _, args := range [][]string{
			{"BUCKET.TAKE", "k"}, {"CL.THROTTLE", "k", "1", "1", "1"},
			{"HGETALL", "k"}, {"HGET", "k", "tokens"}, {"HSET", "k", "tokens", "1"}, {"EXISTS", "k"}, {"TYPE", "k"}, {"TTL", "k"},
			{"DEL", "k"}, {"KEYS", "*"}, {"SCAN", "0"}, {"DBSIZE"}, {"RANDOMKEY"}, {"FLUSHALL"}, {"SAVE"},
		} {
			assert.Equal(t, "-ERR the server is shutting down\r\n", rc.do(args...), "%q", args)
		}
		assert.Equal(t, "+PONG\r\n", rc.do("PING"), "the connection survives")
	})
	t.Run("internal", func(t *testing.T) {
		t.Parallel()
		st := newStack(t, storage.Options{})
		var logs logBuffer
		ts := serve(t, st, broken{st.lim}, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		rc := ts.raw(t)
		for _, args := range [][]string{{"DEL", "k"}, {"UNLINK", "k"}, {"KEYS", "*"}, {"SCAN", "0"}, {"RANDOMKEY"}} {
			assert.Equal(t, "-ERR disk on fire\r\n", rc.do(args...), "%q", args)
		}
		assert.Equal(t, "+PONG\r\n", rc.do("PING"), "the connection survives")
		assert.Contains(t, logs.String(), `msg="respcompat: store failed" cmd=del `)
		assert.Contains(t, logs.String(), `msg="respcompat: store failed" cmd=randomkey `)
	})
}

// Under --sync always, a change whose write failed is answered -MISCONF, as
// Redis answers the writes it cannot persist, and logged. The change stays
// made (its tokens stay spent) and is counted; a take that changes nothing
// (a peek, a refusal) writes nothing and is answered as usual.
func TestNotDurableIsMisconf(t *testing.T) {
	t.Parallel()
	st := newStack(t, storage.Options{}) // default policy: 5 tokens, one every 3 s
	var logs logBuffer
	ts := serve(t, st, diskDown{st.lim}, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	rc := ts.raw(t)

	const misconf = "-MISCONF the change was made but could not be written to the data file; " +
		"it stays made and will be written when the disk recovers: not durable: write bucketd.db: no space left on device\r\n"
	assert.Equal(t, misconf, rc.do("BUCKET.TAKE", "k"))
	assert.Equal(t, misconf, rc.do("BUCKET.TAKE", "k", "3"))
	assert.Equal(t, misconf, rc.do("CL.THROTTLE", "k", "4", "1", "60"))
	assert.Equal(t, "-ERR the data file could not be written; every change stays in memory and is retried: "+
		"not durable: write bucketd.db: no space left on device\r\n", rc.do("SAVE"), "SAVE made no change to speak of")

	// The tokens stay spent: 1 of 5 left under the policy, 4 of 5 under
	// CL.THROTTLE.
	assert.Equal(t, "$1\r\n1\r\n", rc.do("HGET", "k", "tokens"))
	assert.Equal(t, "*6\r\n:1\r\n:5\r\n:1\r\n:0\r\n:12000\r\n$7\r\ndefault\r\n", rc.do("BUCKET.TAKE", "k", "0"), "a peek")
	assert.Equal(t, "*6\r\n:0\r\n:5\r\n:1\r\n:3000\r\n:12000\r\n$7\r\ndefault\r\n", rc.do("BUCKET.TAKE", "k", "2"), "a refusal")
	assert.Equal(t, "*5\r\n:0\r\n:5\r\n:4\r\n:-1\r\n:60\r\n", rc.do("CL.THROTTLE", "k", "4", "1", "60", "0"), "a peek")

	info := rc.do("INFO", "policies")
	assert.Contains(t, info, "policy_default:allowed=2,denied=1,shadow=0\r\n")
	assert.Contains(t, info, "cl_throttle:allowed=1,denied=0\r\n")
	assert.Contains(t, logs.String(), `msg="respcompat: a change could not be made durable"`)
}
