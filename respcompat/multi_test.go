package respcompat

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// TestMultiRedisCases are the cases of Redis's tests/unit/multi.tcl that
// apply to buckets, with bucketd's commands for SET and friends (a take
// changes a key; HSET tokens sets it; DEL resets it), and the exact bytes
// Redis answers.
func TestMultiRedisCases(t *testing.T) {
	t.Parallel()
	const queued = "+QUEUED\r\n"
	take := func(k string) []string { return []string{"BUCKET.TAKE", k} }
	tests := []struct {
		name string
		cmds [][]string
		want []string // one reply per command
	}{
		{"MULTI / EXEC basics", [][]string{{"MULTI"}, {"HGET", "k", "tokens"}, {"PING"}, {"EXEC"}},
			[]string{"+OK\r\n", queued, queued, "*2\r\n$-1\r\n+PONG\r\n"}},
		{"DISCARD", [][]string{take("k"), {"MULTI"}, {"DEL", "k"}, {"DISCARD"}, {"HGET", "k", "tokens"}},
			[]string{"*6\r\n:1\r\n:15\r\n:14\r\n:0\r\n:3000\r\n$7\r\ndefault\r\n", "+OK\r\n", queued, "+OK\r\n", "$2\r\n14\r\n"}},
		{"Nested MULTI are not allowed", [][]string{{"MULTI"}, {"MULTI"}, {"EXEC"}},
			[]string{"+OK\r\n", "-ERR MULTI calls can not be nested\r\n", "*0\r\n"}},
		{"WATCH inside MULTI is not allowed", [][]string{{"MULTI"}, {"WATCH", "x"}, {"EXEC"}},
			[]string{"+OK\r\n", "-ERR WATCH inside MULTI is not allowed\r\n", "*0\r\n"}},
		{"EXEC fails if there are errors while queueing commands", [][]string{{"MULTI"}, take("foo1"), {"non-existing-command"}, take("foo2"), {"EXEC"}, {"EXISTS", "foo1", "foo2"}},
			[]string{"+OK\r\n", queued, "-ERR unknown command 'non-existing-command', with args beginning with: \r\n", queued,
				"-EXECABORT Transaction discarded because of previous errors.\r\n", ":0\r\n"}},
		{"a wrong arity while queueing aborts EXEC", [][]string{{"MULTI"}, take("foo1"), {"HGET", "k"}, {"EXEC"}, {"EXISTS", "foo1"}},
			[]string{"+OK\r\n", queued, "-ERR wrong number of arguments for 'hget' command\r\n",
				"-EXECABORT Transaction discarded because of previous errors.\r\n", ":0\r\n"}},
		{"If EXEC aborts, the client MULTI state is cleared", [][]string{{"MULTI"}, {"nope"}, {"EXEC"}, {"PING"}},
			[]string{"+OK\r\n", "-ERR unknown command 'nope', with args beginning with: \r\n",
				"-EXECABORT Transaction discarded because of previous errors.\r\n", "+PONG\r\n"}},
		{"EXEC works on WATCHed key not modified", [][]string{{"WATCH", "x", "y", "z"}, {"WATCH", "k"}, {"MULTI"}, {"PING"}, {"EXEC"}},
			[]string{"+OK\r\n", "+OK\r\n", "+OK\r\n", queued, "*1\r\n+PONG\r\n"}},
		{"EXEC fail on WATCHed key modified (1 key of 5 watched)", [][]string{{"WATCH", "a", "b", "x", "k", "z"}, {"HSET", "x", "tokens", "3"}, {"MULTI"}, {"PING"}, {"EXEC"}},
			[]string{"+OK\r\n", ":0\r\n", "+OK\r\n", queued, "*-1\r\n"}},
		{"EXEC fail on WATCHed key taken from", [][]string{{"WATCH", "x"}, take("x"), {"MULTI"}, {"PING"}, {"EXEC"}},
			[]string{"+OK\r\n", "*6\r\n:1\r\n:15\r\n:14\r\n:0\r\n:3000\r\n$7\r\ndefault\r\n", "+OK\r\n", queued, "*-1\r\n"}},
		{"a peek does not touch the WATCHed key", [][]string{{"WATCH", "x"}, {"BUCKET.TAKE", "x", "0"}, {"MULTI"}, {"PING"}, {"EXEC"}},
			[]string{"+OK\r\n", "*6\r\n:1\r\n:15\r\n:15\r\n:0\r\n:0\r\n$7\r\ndefault\r\n", "+OK\r\n", queued, "*1\r\n+PONG\r\n"}},
		{"After failed EXEC key is no longer watched", [][]string{{"WATCH", "x"}, take("x"), {"MULTI"}, {"PING"}, {"EXEC"}, take("x"), {"MULTI"}, {"PING"}, {"EXEC"}},
			[]string{"+OK\r\n", "*6\r\n:1\r\n:15\r\n:14\r\n:0\r\n:3000\r\n$7\r\ndefault\r\n", "+OK\r\n", queued, "*-1\r\n",
				"*6\r\n:1\r\n:15\r\n:13\r\n:0\r\n:6000\r\n$7\r\ndefault\r\n", "+OK\r\n", queued, "*1\r\n+PONG\r\n"}},
		{"It is possible to UNWATCH", [][]string{{"WATCH", "x"}, {"HSET", "x", "tokens", "3"}, {"UNWATCH"}, {"MULTI"}, {"PING"}, {"EXEC"}},
			[]string{"+OK\r\n", ":0\r\n", "+OK\r\n", "+OK\r\n", queued, "*1\r\n+PONG\r\n"}},
		{"UNWATCH when there is nothing watched works as expected", [][]string{{"UNWATCH"}}, []string{"+OK\r\n"}},
		{"FLUSHALL is able to touch the watched keys", [][]string{{"HSET", "x", "tokens", "3"}, {"WATCH", "x"}, {"FLUSHALL"}, {"MULTI"}, {"PING"}, {"EXEC"}},
			[]string{":0\r\n", "+OK\r\n", "+OK\r\n", "+OK\r\n", queued, "*-1\r\n"}},
		{"FLUSHALL does not touch non affected keys", [][]string{{"DEL", "x"}, {"WATCH", "x"}, {"FLUSHALL"}, {"MULTI"}, {"PING"}, {"EXEC"}},
			[]string{":0\r\n", "+OK\r\n", "+OK\r\n", "+OK\r\n", queued, "*1\r\n+PONG\r\n"}},
		{"DISCARD should clear the WATCH dirty flag on the client", [][]string{{"WATCH", "x"}, {"HSET", "x", "tokens", "10"}, {"MULTI"}, {"DISCARD"}, {"MULTI"}, take("x"), {"EXEC"}},
			[]string{"+OK\r\n", ":0\r\n", "+OK\r\n", "+OK\r\n", "+OK\r\n", queued, "*1\r\n*6\r\n:1\r\n:15\r\n:9\r\n:0\r\n:18000\r\n$7\r\ndefault\r\n"}},
		{"EXEC without MULTI", [][]string{{"EXEC"}}, []string{"-ERR EXEC without MULTI\r\n"}},
		{"DISCARD without MULTI", [][]string{{"DISCARD"}}, []string{"-ERR DISCARD without MULTI\r\n"}},
		{"SHUTDOWN is not allowed inside MULTI", [][]string{{"MULTI"}, {"SHUTDOWN"}, {"EXEC"}},
			[]string{"+OK\r\n", "-ERR Command not allowed inside a transaction\r\n", "-EXECABORT Transaction discarded because of previous errors.\r\n"}},
		{"a command that fails inside EXEC does not stop the others", [][]string{{"MULTI"}, {"BUCKET.TAKE", "k", "1", "POLICY", "nope"}, take("k"), {"EXEC"}},
			[]string{"+OK\r\n", queued, queued, "*2\r\n-ERR unknown policy 'nope'\r\n*6\r\n:1\r\n:15\r\n:14\r\n:0\r\n:3000\r\n$7\r\ndefault\r\n"}},
		{"a transaction of takes", [][]string{{"MULTI"}, take("k"), {"CL.THROTTLE", "k", "1", "1", "60"}, {"DBSIZE"}, {"EXEC"}},
			[]string{"+OK\r\n", queued, queued, queued,
				"*3\r\n*6\r\n:1\r\n:15\r\n:14\r\n:0\r\n:3000\r\n$7\r\ndefault\r\n*5\r\n:0\r\n:2\r\n:1\r\n:-1\r\n:60\r\n:1\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := start(t, Config{})
			rc := ts.raw(t)
			require.Len(t, tt.want, len(tt.cmds))
			for i, cmd := range tt.cmds {
				assert.Equal(t, tt.want[i], rc.do(cmd...), "reply %d, to %q", i, cmd)
			}
		})
	}
}

// TestMultiWatchedByAnotherClient: a change by another client, over the
// limiter as the HTTP front makes it, fails the EXEC of a client watching
// the key, and nothing queued runs.
func TestMultiWatchedByAnotherClient(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	assert.Equal(t, "+OK\r\n", rc.do("WATCH", "k"))
	assert.Equal(t, "+OK\r\n", rc.do("MULTI"))
	assert.Equal(t, "+QUEUED\r\n", rc.do("BUCKET.TAKE", "k", "5"))
	_, err := ts.lim.Take("k", "", 2*bucket.Token) // an HTTP take
	require.NoError(t, err)
	assert.Equal(t, "*-1\r\n", rc.do("EXEC"))
	res, err := ts.lim.Take("k", "", 0)
	require.NoError(t, err)
	assert.Equal(t, 13*bucket.Token, res.Remaining, "the queued take did not run")
}

// TestGoRedisTxPipelined: go-redis's TxPipelined sends MULTI ... EXEC and
// reads each command's reply from EXEC's array.
func TestGoRedisTxPipelined(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rdb := ts.client(t)
	ctx := ctxT(t)
	var take, peek *redis.Cmd
	var size *redis.IntCmd
	cmds, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		take = p.Do(ctx, "BUCKET.TAKE", "k", "3")
		peek = p.Do(ctx, "BUCKET.TAKE", "k", "0")
		size = p.DBSize(ctx)
		return nil
	})
	require.NoError(t, err)
	assert.Len(t, cmds, 3)
	assert.Equal(t, []any{int64(1), int64(15), int64(12), int64(0), int64(9000), "default"}, take.Val())
	assert.Equal(t, []any{int64(1), int64(15), int64(12), int64(0), int64(9000), "default"}, peek.Val())
	assert.Equal(t, int64(1), size.Val())

	// An error while queueing aborts the whole transaction.
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "BUCKET.TAKE", "k", "3")
		p.Do(ctx, "HGET", "k") // wrong arity
		return nil
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "EXECABORT")
	res, err := ts.lim.Take("k", "", 0)
	require.NoError(t, err)
	assert.Equal(t, 12*bucket.Token, res.Remaining, "nothing of an aborted transaction ran")
}

// TestGoRedisWatch: go-redis's Watch, an optimistic read-modify-write that
// retries on redis.TxFailedErr, with another client changing the key
// between the read and the EXEC on the first try only.
func TestGoRedisWatch(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rdb := ts.client(t)
	ctx := ctxT(t)
	tries := 0
	txf := func(tx *redis.Tx) error {
		tries++
		tokens, err := tx.HGet(ctx, "k", "tokens").Int()
		if errors.Is(err, redis.Nil) {
			tokens = 15
		} else if err != nil {
			return err
		}
		if tries == 1 {
			_, err := ts.lim.Take("k", "", bucket.Token) // another client
			require.NoError(t, err)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, "k", "tokens", strconv.Itoa(tokens/2))
			return nil
		})
		return err
	}
	err := rdb.Watch(ctx, txf, "k")
	assert.ErrorIs(t, err, redis.TxFailedErr, "the first try saw the key change")
	require.NoError(t, rdb.Watch(ctx, txf, "k"))
	assert.Equal(t, 2, tries)
	assert.Equal(t, "7", rdb.HGet(ctx, "k", "tokens").Val(), "half of the 14 the other client left")
}

// TestMultiConcurrentClients: clients run MULTI, ten CL.THROTTLE k, EXEC
// over RESP while goroutines take from the same key through the limiter
// (as HTTP does) until they are done, on a clock that does not move: no
// take is lost or counted twice (what the bucket lost is what was
// allowed), and within one EXEC each take leaves exactly one token less
// than the one before. (server/e2e's TestMultiAgainstHTTPTakes checks the
// exact capacity over HTTP and RESP.)
func TestMultiConcurrentClients(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	const capacity = 1_000_000 // never reached: every take is allowed
	const clients, rounds, perTx = 4, 30, 10
	var allowed, interleaved atomic.Int64
	var resp, direct sync.WaitGroup
	for range clients {
		rdb := ts.client(t)
		resp.Go(func() {
			ctx := ctxT(t)
			for range rounds {
				cmds := make([]*redis.Cmd, perTx)
				_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
					for i := range cmds {
						cmds[i] = p.Do(ctx, "CL.THROTTLE", "k", "999999", "1", "3600")
					}
					return nil
				})
				if !assert.NoError(t, err) {
					return
				}
				prev := int64(-1)
				for _, c := range cmds {
					r := c.Val().([]any)
					if assert.Equal(t, int64(0), r[0]) {
						allowed.Add(1)
					}
					if prev >= 0 && r[2] != prev-1 {
						interleaved.Add(1)
					}
					prev = r[2].(int64)
				}
			}
		})
	}
	done := make(chan struct{})
	lim := bucket.Limit{Capacity: capacity * bucket.Token, Rate: bucket.Every(3600 * 1e9)}
	for range clients {
		direct.Go(func() {
			for range 200_000 { // a bound; the capacity holds 4 times this
				select {
				case <-done:
					return
				default:
				}
				d, err := ts.lim.Throttle("k", lim, bucket.Token)
				if !assert.NoError(t, err) {
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	resp.Wait()
	close(done)
	direct.Wait()
	d, err := ts.lim.Throttle("k", lim, 0)
	require.NoError(t, err)
	assert.Equal(t, allowed.Load(), int64((capacity*bucket.Token-d.Remaining)/bucket.Token), "taken from the bucket: what was allowed")
	assert.Zero(t, interleaved.Load(), "a take came between those of an EXEC")
}

// TestMultiRedisCLI: redis-cli sends a transaction command by command, as
// a user types it.
func TestMultiRedisCLI(t *testing.T) {
	t.Parallel()
	cli := redisCLI(t)
	ts := start(t, Config{})
	out := cli(ts, "MULTI\nBUCKET.TAKE k 2\nHGET k tokens\nEXEC\n")
	assert.Equal(t, "OK\nQUEUED\nQUEUED\n1\n15\n13\n0\n6000\ndefault\n13\n", out)
	out = cli(ts, "MULTI\nnope\nEXEC\n")
	assert.Contains(t, out, "\nEXECABORT Transaction discarded because of previous errors.\n")
}

// TestExecOverOutputLimitDisconnects: an EXEC whose replies pass
// Config.OutputLimit runs whole, but its replies are dropped and the
// client disconnected (the locks of EXEC cannot wait on a client).
func TestExecOverOutputLimitDisconnects(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{OutputLimit: 64 << 10})
	rc := ts.raw(t)
	assert.Equal(t, "+OK\r\n", rc.do("MULTI"))
	assert.Equal(t, "+QUEUED\r\n", rc.do("BUCKET.TAKE", "k"))
	for range 20 { // about 12 KB each
		assert.Equal(t, "+QUEUED\r\n", rc.do("COMMAND", "DOCS"))
	}
	assert.Equal(t, "+QUEUED\r\n", rc.do("BUCKET.TAKE", "k"))
	rc.send(encode("EXEC"))
	assert.Empty(t, rc.expectEOF(), "no reply, then the connection closes")
	res, err := ts.lim.Take("k", "", 0)
	require.NoError(t, err)
	assert.Equal(t, 13*bucket.Token, res.Remaining, "the transaction ran whole")

	// Under the limit, the same EXEC answers.
	rc = ts.raw(t)
	assert.Equal(t, "+OK\r\n", rc.do("MULTI"))
	assert.Equal(t, "+QUEUED\r\n", rc.do("COMMAND", "DOCS"))
	assert.Equal(t, "*1\r\n*", rc.do("EXEC")[:5])
}

// TestMultiBounds: a transaction cannot queue more than 16 MiB (an error
// while queueing, so EXEC aborts), nor a connection watch more than
// 100000 keys.
func TestMultiBounds(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	assert.Equal(t, "+OK\r\n", rc.do("MULTI"))
	big := strings.Repeat("x", 60<<10)
	n := 0
	for ; n < 1000; n++ {
		r := rc.do("ECHO", big)
		if r != "+QUEUED\r\n" {
			assert.Equal(t, "-ERR transaction too large: its queued commands exceed 16 MiB\r\n", r)
			break
		}
	}
	assert.Equal(t, 16<<20/(60<<10+3*32), n, "commands queued")
	assert.Equal(t, "-EXECABORT Transaction discarded because of previous errors.\r\n", rc.do("EXEC"))

	keys := make([]string, 1001)
	keys[0] = "WATCH"
	for round := range 100 {
		for i := 1; i < len(keys); i++ {
			keys[i] = "k" + strconv.Itoa(round) + "_" + strconv.Itoa(i)
		}
		require.Equal(t, "+OK\r\n", rc.do(keys...))
	}
	assert.Equal(t, "-ERR too many watched keys: at most 100000 a connection\r\n", rc.do("WATCH", "another"))
	assert.Equal(t, "+OK\r\n", rc.do("UNWATCH"))
	assert.Equal(t, "+OK\r\n", rc.do("WATCH", "another"))
}

// TestClientListShowsTheSession: CLIENT LIST shows a client's MULTI
// (flag x, multi=queued), watched keys (watch=, flag d once one changed),
// MONITOR (flag O) and user, as Redis does.
func TestClientListShowsTheSession(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{AdminToken: "tok"})
	a, b, m := ts.raw(t), ts.raw(t), ts.raw(t)
	a.do("MULTI")
	a.do("PING")
	a.do("PING")
	b.do("WATCH", "k", "j")
	m.do("AUTH", "admin", "tok")
	m.do("MONITOR")
	ts.lim.Take("k", "", bucket.Token)
	list := ts.client(t).ClientList(ctxT(t)).Val()
	lines := strings.Split(strings.TrimSpace(list), "\n")
	require.Len(t, lines, 4)
	assert.Contains(t, lines[0], " flags=x db=0 sub=0 psub=0 ssub=0 multi=2 watch=0 ")
	assert.Contains(t, lines[1], " flags=d db=0 sub=0 psub=0 ssub=0 multi=-1 watch=2 ")
	assert.Contains(t, lines[2], " flags=O db=0 ")
	assert.Contains(t, lines[2], " user=admin ")
	assert.Contains(t, lines[3], " flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 ")
	assert.Contains(t, lines[3], " user=default ")
}
