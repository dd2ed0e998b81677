package respcompat

import (
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The replies to connection commands, byte for byte, each checked against
// Redis 7.0 where Redis has the command.
func TestConnectionCommandsRaw(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "+PONG\r\n"},
		{[]string{"ping", "hi"}, "$2\r\nhi\r\n"},
		{[]string{"PING", "a", "b"}, "-ERR wrong number of arguments for 'ping' command\r\n"},
		{[]string{"ECHO", "x y"}, "$3\r\nx y\r\n"},
		{[]string{"ECHO"}, "-ERR wrong number of arguments for 'echo' command\r\n"},
		{[]string{"SELECT", "0"}, "+OK\r\n"},
		{[]string{"SELECT", "1"}, "-ERR DB index is out of range\r\n"},
		{[]string{"SELECT", "-1"}, "-ERR DB index is out of range\r\n"},
		{[]string{"SELECT", "x"}, "-ERR value is not an integer or out of range\r\n"},
		{[]string{"SELECT", "01"}, "-ERR value is not an integer or out of range\r\n"},
		{[]string{"AUTH", "x"}, "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"},
		{[]string{"AUTH", "default", "anything"}, "+OK\r\n"},
		{[]string{"AUTH", "bob", "x"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{[]string{"AUTH", "a", "b", "c"}, "-ERR syntax error\r\n"},
		{[]string{"HELLO", "3"}, "-NOPROTO unsupported protocol version\r\n"},
		{[]string{"HELLO", "4"}, "-NOPROTO unsupported protocol version\r\n"},
		{[]string{"HELLO", "x"}, "-ERR Protocol version is not an integer or out of range\r\n"},
		{[]string{"HELLO", "2", "SETNAME"}, "-ERR Syntax error in HELLO option 'SETNAME'\r\n"},
		{[]string{"HELLO", "2", "FOO"}, "-ERR Syntax error in HELLO option 'FOO'\r\n"},
		{[]string{"HELLO", "2", "SETNAME", "a b"}, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"},
		{[]string{"HELLO", "2"}, "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"},
		{[]string{"CLIENT", "ID"}, ":1\r\n"},
		{[]string{"CLIENT", "GETNAME"}, "$-1\r\n"},
		{[]string{"CLIENT", "SETNAME", "worker-1"}, "+OK\r\n"},
		{[]string{"CLIENT", "GETNAME"}, "$8\r\nworker-1\r\n"},
		{[]string{"CLIENT", "SETNAME", "a b"}, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"},
		{[]string{"CLIENT", "SETNAME"}, "-ERR wrong number of arguments for 'client|setname' command\r\n"},
		{[]string{"CLIENT", "GETNAME", "x"}, "-ERR wrong number of arguments for 'client|getname' command\r\n"},
		{[]string{"CLIENT", "SETINFO", "LIB-NAME", "go-redis(,go1.26)"}, "+OK\r\n"},
		{[]string{"CLIENT", "SETINFO", "lib-ver", "9.23.0"}, "+OK\r\n"},
		{[]string{"CLIENT", "SETINFO", "LIB-FOO", "x"}, "-ERR Unrecognized option 'LIB-FOO'\r\n"},
		{[]string{"CLIENT", "SETINFO", "LIB-NAME", "a b"}, "-ERR LIB-NAME cannot contain spaces, newlines or special characters.\r\n"},
		{[]string{"CLIENT", "KILL", "x"}, "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n"},
		{[]string{"CLIENT"}, "-ERR wrong number of arguments for 'client' command\r\n"},
		{[]string{"CLIENT", "LIST", "TYPE", "pubsub"}, "$0\r\n\r\n"},
		{[]string{"CLIENT", "LIST", "TYPE", "bogus"}, "-ERR Unknown client type 'bogus'\r\n"},
		{[]string{"CLIENT", "LIST", "ID", "x"}, "-ERR Invalid client ID\r\n"},
		{[]string{"CLIENT", "LIST", "FOO"}, "-ERR syntax error\r\n"},
		{[]string{"COMMAND", "FOO"}, "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"},
		{[]string{"COMMAND", "COUNT", "x"}, "-ERR wrong number of arguments for 'command|count' command\r\n"},
		{[]string{"COMMAND", "DOCS", "nosuch"}, "*0\r\n"},
		{[]string{"COMMAND", "INFO", "nosuch"}, "*1\r\n$-1\r\n"},
		{[]string{"COMMAND", "INFO", "PING"}, "*1\r\n*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"},
		{[]string{"foo", "a", "b"}, "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"},
		{[]string{"FOO"}, "-ERR unknown command 'FOO', with args beginning with: \r\n"},
		{[]string{"averyveryverylongcommandname"}, "-ERR unknown command 'averyveryverylongcommandname', with args beginning with: \r\n"},
		{[]string{"TIME", "x"}, "-ERR wrong number of arguments for 'time' command\r\n"},
		{[]string{"QUIT"}, "+OK\r\n"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rc.do(tt.args...), "%q", tt.args)
	}
	assert.Empty(t, rc.expectEOF(), "QUIT closes the connection")
}

func TestUnknownCommandQuotesAtMost128Bytes(t *testing.T) {
	t.Parallel()
	args := [][]byte{[]byte("nope"), []byte(strings.Repeat("a", 100)), []byte(strings.Repeat("b", 100)), []byte("c")}
	got := unknownCommand(args)
	// Redis: each argument is cut to what is left of 128 bytes, quotes
	// and space not counted in the cut but counted in what is left.
	want := "ERR unknown command 'nope', with args beginning with: '" + strings.Repeat("a", 100) + "' '" + strings.Repeat("b", 25) + "' "
	assert.Equal(t, want, got)
}

func TestGoRedisConnectionCommands(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	ctx := ctxT(t)
	for _, proto := range []int{3, 2} {
		t.Run("protocol "+string(rune('0'+proto)), func(t *testing.T) {
			// Protocol 3 sends HELLO 3, gets NOPROTO and falls back to
			// RESP2; protocol 2 sends HELLO 2, which succeeds.
			c := ts.client(t, func(o *redis.Options) { o.Protocol = proto; o.ClientName = "tester" })
			assert.Equal(t, "PONG", c.Ping(ctx).Val())
			assert.Equal(t, "hi", c.Echo(ctx, "hi").Val())
			name, err := c.ClientGetName(ctx).Result()
			require.NoError(t, err)
			assert.Equal(t, "tester", name)
			id, err := c.ClientID(ctx).Result()
			require.NoError(t, err)
			assert.Positive(t, id)

			info, err := c.ClientInfo(ctx).Result()
			require.NoError(t, err)
			assert.Equal(t, id, info.ID)
			assert.Equal(t, "tester", info.Name)
			assert.Equal(t, "go-redis(,"+strings.ReplaceAll(runtime.Version(), " ", "-")+")", info.LibName, "CLIENT SETINFO on connect")
			assert.NotEmpty(t, info.LibVer)
			assert.Equal(t, 2, info.Resp)

			list, err := c.ClientList(ctx).Result()
			require.NoError(t, err)
			assert.Contains(t, list, "name=tester ")

			n, err := c.Do(ctx, "COMMAND", "COUNT").Int()
			require.NoError(t, err)
			cmds, err := c.Command(ctx).Result()
			require.NoError(t, err)
			assert.Len(t, cmds, n)
			assert.Equal(t, int8(-1), cmds["cl.throttle"].Arity)
			assert.Equal(t, int8(1), cmds["cl.throttle"].FirstKeyPos)
			assert.True(t, cmds["hgetall"].ReadOnly)

			docs, err := c.Do(ctx, "COMMAND", "DOCS", "CL.THROTTLE").Slice()
			require.NoError(t, err)
			require.Len(t, docs, 2)
			assert.Equal(t, "cl.throttle", docs[0])

			assert.Equal(t, "OK", c.Do(ctx, "SELECT", 0).Val())
			assert.Equal(t, "OK", c.Do(ctx, "QUIT").Val())
		})
	}
}

func TestCommandDocs(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	got := rc.do("COMMAND", "DOCS", "bucket.take")
	want := "*2\r\n$11\r\nbucket.take\r\n*10\r\n" +
		"$7\r\nsummary\r\n$" + itoa(len(ts.cmds["bucket.take"].doc.summary)) + "\r\n" + ts.cmds["bucket.take"].doc.summary + "\r\n" +
		"$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$7\r\nbucketd\r\n$10\r\ncomplexity\r\n$19\r\nO(number of limits)\r\n" +
		"$9\r\narguments\r\n*3\r\n" +
		"*4\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n" +
		"*6\r\n$4\r\nname\r\n$4\r\ncost\r\n$4\r\ntype\r\n$6\r\nstring\r\n$5\r\nflags\r\n*1\r\n+optional\r\n" +
		"*8\r\n$4\r\nname\r\n$6\r\npolicy\r\n$4\r\ntype\r\n$6\r\nstring\r\n$5\r\ntoken\r\n$6\r\nPOLICY\r\n$5\r\nflags\r\n*1\r\n+optional\r\n"
	assert.Equal(t, want, got)

	// Every command is documented with what redis-cli asserts it gets.
	all := rc.do("COMMAND", "DOCS")
	for _, cmd := range ts.list {
		assert.Contains(t, all, "$"+itoa(len(cmd.name))+"\r\n"+cmd.name+"\r\n*", cmd.name)
		assert.NotEmpty(t, cmd.doc.summary, cmd.name)
		assert.NotEmpty(t, cmd.doc.since, cmd.name)
		assert.NotEmpty(t, cmd.doc.group, cmd.name)
	}
	assert.Equal(t, ":"+itoa(len(ts.list))+"\r\n", rc.do("COMMAND", "COUNT"))
	assert.True(t, strings.HasPrefix(rc.do("COMMAND", "LIST"), "*"+itoa(len(ts.list))+"\r\n"))
	assert.True(t, strings.HasPrefix(rc.do("COMMAND", "HELP"), "*13\r\n+COMMAND <subcommand>"))
}

func TestAuth(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{RequirePass: "s3cret"})
	ctx := ctxT(t)

	t.Run("raw", func(t *testing.T) {
		rc := ts.raw(t)
		noauth := "-NOAUTH Authentication required.\r\n"
		assert.Equal(t, noauth, rc.do("PING"))
		assert.Equal(t, noauth, rc.do("CL.THROTTLE", "k", "1", "1", "1"))
		assert.Equal(t, noauth, rc.do("HGETALL", "k"))
		// Redis checks the name and the arity before authentication.
		assert.Equal(t, "-ERR unknown command 'nope', with args beginning with: \r\n", rc.do("nope"))
		assert.Equal(t, "-ERR wrong number of arguments for 'hget' command\r\n", rc.do("HGET", "k"))
		hello := "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
		assert.Equal(t, hello, rc.do("HELLO"))
		assert.Equal(t, hello, rc.do("HELLO", "2"))
		assert.Equal(t, "-NOPROTO unsupported protocol version\r\n", rc.do("HELLO", "3", "AUTH", "default", "s3cret"))
		wrong := "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
		assert.Equal(t, wrong, rc.do("AUTH", "nope"))
		assert.Equal(t, wrong, rc.do("AUTH", "bob", "s3cret"))
		assert.Equal(t, wrong, rc.do("HELLO", "2", "AUTH", "default", "nope"))
		assert.Equal(t, noauth, rc.do("PING"))
		assert.True(t, strings.HasPrefix(rc.do("HELLO", "2", "AUTH", "default", "s3cret", "SETNAME", "me"), "*14\r\n"))
		assert.Equal(t, "+PONG\r\n", rc.do("PING"))
		assert.Equal(t, "$2\r\nme\r\n", rc.do("CLIENT", "GETNAME"))
		// A failed AUTH later does not undo the success.
		assert.Equal(t, wrong, rc.do("AUTH", "nope"))
		assert.Equal(t, "+PONG\r\n", rc.do("PING"))

		rc2 := ts.raw(t)
		assert.Equal(t, "+OK\r\n", rc2.do("AUTH", "s3cret"))
		assert.Equal(t, "+PONG\r\n", rc2.do("PING"))
		rc3 := ts.raw(t)
		assert.Equal(t, "+OK\r\n", rc3.do("AUTH", "default", "s3cret"))
		assert.Equal(t, "+PONG\r\n", rc3.do("PING"))
		rc4 := ts.raw(t)
		assert.Equal(t, "+OK\r\n", rc4.do("QUIT"), "QUIT needs no password")
	})

	t.Run("go-redis", func(t *testing.T) {
		for _, proto := range []int{2, 3} {
			c := ts.client(t, func(o *redis.Options) { o.Protocol = proto; o.Password = "s3cret" })
			assert.Equal(t, "PONG", c.Ping(ctx).Val(), "protocol %d", proto)
			c = ts.client(t, func(o *redis.Options) { o.Protocol = proto; o.Username = "default"; o.Password = "s3cret" })
			assert.Equal(t, "PONG", c.Ping(ctx).Val(), "protocol %d with a user name", proto)

			c = ts.client(t, func(o *redis.Options) { o.Protocol = proto; o.Password = "wrong" })
			err := c.Ping(ctx).Err()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "WRONGPASS", "protocol %d", proto)

			c = ts.client(t, func(o *redis.Options) { o.Protocol = proto })
			err = c.Ping(ctx).Err()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "NOAUTH", "protocol %d", proto)
		}
	})
}

// With a password, the commands that change, save or stop the server are
// refused like any other until AUTH, and change nothing.
func TestAuthAdminCommands(t *testing.T) {
	t.Parallel()
	shutdowns := make(chan struct{}, 4)
	st := newStack(t, storage.Options{})
	require.NoError(t, st.lim.SetPolicies("default", testPolicies))
	saves := holdSaves(st.lim) // counts the saves, holding none
	close(saves.release)
	ts := serve(t, st, saves, Config{RequirePass: "s3cret", Shutdown: func() { shutdowns <- struct{}{} }})
	ctx := ctxT(t)
	require.NoError(t, ts.lim.SetTokens("joe", 3*bucket.Token))

	const noauth = "-NOAUTH Authentication required.\r\n"
	rc := ts.raw(t)
	for _, args := range [][]string{
		{"DEL", "joe"}, {"UNLINK", "joe"},
		{"HSET", "joe", "tokens", "15"}, {"HMSET", "joe", "tokens", "15"},
		{"FLUSHALL"}, {"FLUSHDB", "SYNC"},
		{"CONFIG", "SET", "capacity", "100"}, {"CONFIG", "SET", "maxmemory", "1gb"}, {"CONFIG", "SET", "policy.burst", "1@1/s"},
		{"CONFIG", "GET", "*"}, {"CONFIG", "RESETSTAT"}, {"INFO", "policies"},
		{"SAVE"}, {"BGSAVE"}, {"LASTSAVE"},
		{"SHUTDOWN"}, {"SHUTDOWN", "NOSAVE", "NOW"},
		{"BUCKET.TAKE", "joe", "POLICY", "burst"}, {"KEYS", "*"},
	} {
		assert.Equal(t, noauth, rc.do(args...), "%q", args)
	}

	c := ts.client(t) // no password
	for _, cmd := range []redis.Cmder{
		c.Del(ctx, "joe"),
		c.HSet(ctx, "joe", "tokens", "15"),
		c.FlushAll(ctx),
		c.ConfigSet(ctx, "capacity", "100"),
		c.Save(ctx),
		c.Shutdown(ctx),
	} {
		require.Error(t, cmd.Err(), cmd.Name())
		assert.Contains(t, cmd.Err().Error(), "NOAUTH", cmd.Name())
	}

	// Nothing happened.
	v, ok, err := ts.lim.Inspect("joe")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 3*bucket.Token, v.Remaining)
	p, err := ts.lim.Policy("")
	require.NoError(t, err)
	assert.Equal(t, 15*bucket.Token, p.Limits[0].Capacity)
	assert.Empty(t, saves.entered, "no SAVE or BGSAVE ran")
	for _, p := range ts.lim.Policies() {
		assert.Zero(t, p.Counts, "policy %s took nothing", p.Name)
	}
	assert.Empty(t, shutdowns)

	// After AUTH the same commands run.
	assert.Equal(t, "+OK\r\n", rc.do("AUTH", "s3cret"))
	assert.Equal(t, "+OK\r\n", rc.do("CONFIG", "SET", "capacity", "100"))
	assert.Equal(t, ":1\r\n", rc.do("DEL", "joe"))
	assert.Equal(t, "+OK\r\n", rc.do("FLUSHALL"))
	assert.Equal(t, "+OK\r\n", rc.do("SAVE"))
	assert.Len(t, saves.entered, 1)
	rc.send(encode("SHUTDOWN"))
	assert.Empty(t, rc.expectEOF())
	<-shutdowns
}

// What redis-cli and the common clients send when they connect and at
// startup all succeeds.
func TestClientHandshakes(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	for _, args := range [][]string{
		{"COMMAND", "DOCS"},             // redis-cli 7 at startup
		{"CONFIG", "GET", "save"},       // redis-benchmark
		{"CONFIG", "GET", "appendonly"}, // redis-benchmark
		{"CLIENT", "SETINFO", "LIB-NAME", "redis-py"},
		{"CLIENT", "SETINFO", "LIB-VER", "5.0.0"},
		{"SELECT", "0"},
		{"INFO", "server"},
		{"COMMAND"},
	} {
		got := rc.do(args...)
		assert.False(t, strings.HasPrefix(got, "-"), "%q: %q", args, got)
	}
	// go-redis with a database number and a name, both sent on connect.
	c := ts.client(t, func(o *redis.Options) { o.DB = 0; o.ClientName = "svc" })
	assert.Equal(t, "PONG", c.Ping(ctxT(t)).Val())
	c = ts.client(t, func(o *redis.Options) { o.DB = 1 })
	err := c.Ping(ctxT(t)).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DB index is out of range")
}

func itoa(n int) string { return strconv.Itoa(n) }
