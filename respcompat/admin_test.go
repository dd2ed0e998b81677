package respcompat

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// infoFields parses an INFO reply into its sections' fields.
func infoFields(t *testing.T, info string) (sections []string, fields map[string]string) {
	t.Helper()
	require.True(t, strings.HasSuffix(info, "\r\n"), "INFO ends with CRLF")
	fields = make(map[string]string)
	for _, line := range strings.Split(strings.TrimSuffix(info, "\r\n"), "\r\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "# "):
			sections = append(sections, line[2:])
		default:
			k, v, ok := strings.Cut(line, ":")
			require.True(t, ok, "line %q", line)
			fields[k] = v
		}
	}
	return sections, fields
}

func TestInfo(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{
		MaxClients: 50,
		Info: func() map[string]string {
			return map[string]string{"sync_mode": "batch", "data_file": "/var/lib/bucketd/b.db\r\nx"}
		},
	})
	c := ts.client(t)
	ctx := ctxT(t)
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "a").Err())
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "b").Err())

	info, err := c.Info(ctx).Result()
	require.NoError(t, err)
	sections, f := infoFields(t, info)
	assert.Equal(t, []string{"Server", "Clients", "Stats", "Persistence", "Keyspace", "Policies", "Bucketd"}, sections)
	assert.Equal(t, "7.0.0", f["redis_version"])
	assert.Equal(t, "standalone", f["redis_mode"])
	assert.Equal(t, ts.addr[strings.LastIndexByte(ts.addr, ':')+1:], f["tcp_port"])
	assert.Equal(t, "0", f["uptime_in_seconds"])
	assert.Equal(t, "1", f["connected_clients"])
	assert.Equal(t, "50", f["maxclients"])
	assert.Equal(t, "1", f["total_connections_received"])
	assert.Equal(t, "0", f["rejected_connections"])
	assert.NotEmpty(t, f["total_commands_processed"])
	assert.Equal(t, strconv.FormatInt(epoch.Add(-time.Hour).Unix(), 10), f["rdb_last_save_time"])
	assert.Equal(t, "0", f["rdb_bgsave_in_progress"])
	assert.Equal(t, "keys=2,expires=2,avg_ttl=0", f["db0"])
	assert.Equal(t, "batch", f["sync_mode"])
	assert.Equal(t, "/var/lib/bucketd/b.db  x", f["data_file"], "an extra field stays on its line")

	// Sections by name, in any case; several at once; unknown ones empty.
	for _, tt := range []struct {
		args []any
		want []string
	}{
		{[]any{"INFO", "keyspace"}, []string{"Keyspace"}},
		{[]any{"INFO", "SERVER", "Clients"}, []string{"Server", "Clients"}},
		{[]any{"INFO", "all"}, sections},
		{[]any{"INFO", "everything"}, sections},
		{[]any{"INFO", "default"}, sections},
		{[]any{"INFO", "bucketd"}, []string{"Bucketd"}},
		{[]any{"INFO", "Policies"}, []string{"Policies"}},
	} {
		got, err := c.Do(ctx, tt.args...).Text()
		require.NoError(t, err)
		s, _ := infoFields(t, got)
		assert.Equal(t, tt.want, s, "%v", tt.args)
	}
	got, err := c.Do(ctx, "INFO", "nosuch").Text()
	require.NoError(t, err)
	assert.Empty(t, got)

	// With no buckets, the keyspace section is empty, as Redis's.
	require.NoError(t, c.FlushAll(ctx).Err())
	got, err = c.Info(ctx, "keyspace").Result()
	require.NoError(t, err)
	assert.Equal(t, "# Keyspace\r\n", got)

	// CONFIG RESETSTAT resets the counters.
	require.NoError(t, c.ConfigResetStat(ctx).Err())
	_, f = infoFields(t, c.Info(ctx, "stats").Val())
	assert.Equal(t, "0", f["total_connections_received"])
	assert.Equal(t, "1", f["total_commands_processed"], "the INFO itself")
}

// getConfig runs CONFIG GET with patterns and returns the pairs.
func getConfig(t *testing.T, c *redis.Client, patterns ...string) map[string]string {
	t.Helper()
	args := []any{"CONFIG", "GET"}
	for _, p := range patterns {
		args = append(args, p)
	}
	flat, err := c.Do(ctxT(t), args...).StringSlice()
	require.NoError(t, err)
	require.Zero(t, len(flat)%2)
	m := make(map[string]string)
	for i := 0; i < len(flat); i += 2 {
		_, dup := m[flat[i]]
		require.False(t, dup, "%s twice", flat[i])
		m[flat[i]] = flat[i+1]
	}
	return m
}

func TestConfigGet(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{IdleTimeout: 90 * time.Second})
	c := ts.client(t)
	ctx := ctxT(t)

	// What redis-benchmark asks for at startup.
	assert.Equal(t, map[string]string{"save": ""}, c.ConfigGet(ctx, "save").Val())
	assert.Equal(t, map[string]string{"appendonly": "no"}, c.ConfigGet(ctx, "appendonly").Val())

	assert.Equal(t, map[string]string{
		"capacity": "15", "rate": "1/3s", "maxmemory": "0", "maxmemory-policy": "noeviction",
		"save": "", "appendonly": "no", "databases": "1", "maxclients": "10000", "timeout": "90",
		"port": ts.addr[strings.LastIndexByte(ts.addr, ':')+1:], "default-policy": "default", "policies": "burst daily default shadow",
		"policy.burst": "5@1/s", "policy.daily": "10@1/s,20@20/d", "policy.default": "15@1/3s", "policy.shadow": "1@1/m shadow",
	}, c.ConfigGet(ctx, "*").Val())
	assert.Equal(t, map[string]string{"maxmemory": "0", "maxmemory-policy": "noeviction"}, c.ConfigGet(ctx, "MAXMEMORY*").Val())
	assert.Equal(t, map[string]string{"capacity": "15", "maxclients": "10000", "maxmemory-policy": "noeviction"}, c.ConfigGet(ctx, "?a?*c*").Val())
	assert.Empty(t, c.ConfigGet(ctx, "nosuch").Val())
	assert.Empty(t, c.ConfigGet(ctx, "[cr]a*").Val(), "no [...] classes: tidwall/match")

	// Several patterns (Redis 7), each parameter once.
	assert.Equal(t, map[string]string{"capacity": "15", "rate": "1/3s"}, getConfig(t, c, "capacity", "rate", "cap*"))
	rc := ts.raw(t)
	assert.Equal(t, "*4\r\n$8\r\ncapacity\r\n$2\r\n15\r\n$4\r\nrate\r\n$4\r\n1/3s\r\n", rc.do("CONFIG", "GET", "rate", "capacity"), "in the server's order")
	assert.Equal(t, "-ERR wrong number of arguments for 'config|get' command\r\n", rc.do("CONFIG", "GET"))

	// A policy of several limits shows each.
	ts.store.mu.Lock()
	ts.store.policies["default"] = ts.store.policies["daily"]
	ts.store.mu.Unlock()
	assert.Equal(t, map[string]string{"capacity": "10 20", "rate": "1/s 20/d"}, getConfig(t, c, "capacity", "rate"))
}

func TestConfigSet(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)

	require.NoError(t, c.ConfigSet(ctx, "capacity", "20").Err())
	assert.Equal(t, map[string]string{"capacity": "20", "rate": "1/3s"}, getConfig(t, c, "capacity", "rate"))
	require.NoError(t, c.ConfigSet(ctx, "rate", "10/s").Err())
	assert.Equal(t, map[string]string{"capacity": "20", "rate": "10/s"}, getConfig(t, c, "capacity", "rate"))
	require.NoError(t, c.Do(ctx, "CONFIG", "SET", "CAPACITY", "2.5", "rate", "1/1m30s").Err())
	p, err := ts.store.Policy("")
	require.NoError(t, err)
	assert.Equal(t, []bucket.Limit{{Capacity: 2500 * bucket.Token / 1000, Rate: bucket.Every(90 * time.Second)}}, p.Limits)

	// maxmemory and maxmemory-policy are checked, kept and otherwise ignored.
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", "100mb").Err())
	require.NoError(t, c.ConfigSet(ctx, "maxmemory-policy", "allkeys-LRU").Err())
	assert.Equal(t, map[string]string{"maxmemory": "100mb", "maxmemory-policy": "allkeys-lru"}, c.ConfigGet(ctx, "maxmemory*").Val())

	rc := ts.raw(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"CONFIG", "SET", "capacity"}, "-ERR wrong number of arguments for 'config|set' command\r\n"},
		{[]string{"CONFIG", "SET", "capacity", "1", "rate"}, "-ERR wrong number of arguments for 'config|set' command\r\n"},
		{[]string{"CONFIG", "SET", "foo", "1"}, "-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n"},
		{[]string{"CONFIG", "SET", "capacity", "x"}, "-ERR CONFIG SET failed (possibly related to argument 'capacity') - \"x\" is not a decimal number\r\n"},
		{[]string{"CONFIG", "SET", "capacity", "0"}, "-ERR CONFIG SET failed (possibly related to argument 'capacity') - capacity 0 must be positive\r\n"},
		{[]string{"CONFIG", "SET", "rate", "fast"}, "-ERR CONFIG SET failed (possibly related to argument 'rate') - rate \"fast\" is not TOKENS/PERIOD, e.g. 100/s or 1/3s\r\n"},
		{[]string{"CONFIG", "SET", "capacity", "1", "capacity", "2"}, "-ERR CONFIG SET failed (possibly related to argument 'capacity') - duplicate parameter\r\n"},
		{[]string{"CONFIG", "SET", "maxmemory", "lots"}, "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"},
		{[]string{"CONFIG", "SET", "maxmemory-policy", "random"}, "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction\r\n"},
		// Nothing is set unless every pair is valid.
		{[]string{"CONFIG", "SET", "maxmemory", "1gb", "capacity", "x"}, "-ERR CONFIG SET failed (possibly related to argument 'capacity') - \"x\" is not a decimal number\r\n"},
		{[]string{"CONFIG", "REWRITE"}, "-ERR CONFIG REWRITE is not supported: bucketd does not write its configuration; policies come from the --config file: edit it and reload (SIGHUP or POST /v1/reload)\r\n"},
		{[]string{"CONFIG", "FOO"}, "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n"},
		{[]string{"CONFIG"}, "-ERR wrong number of arguments for 'config' command\r\n"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rc.do(tt.args...), "%q", tt.args)
	}
	assert.Equal(t, map[string]string{"maxmemory": "100mb"}, c.ConfigGet(ctx, "maxmemory").Val())
	assert.True(t, strings.HasPrefix(rc.do("CONFIG", "HELP"), "*14\r\n+CONFIG <subcommand>"))

	// A default policy of several limits cannot be set from here.
	ts.store.mu.Lock()
	ts.store.policies["default"] = ts.store.policies["daily"]
	ts.store.mu.Unlock()
	assert.Equal(t, "-ERR CONFIG SET failed (possibly related to argument 'rate') - the default policy has 2 limits; only a policy of one limit can be set here\r\n",
		rc.do("CONFIG", "SET", "rate", "1/s"))
}

// CONFIG GET shows the policies, each in a compact form; CONFIG SET refuses
// to change them, pointing at the config file.
func TestConfigPolicies(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	rc := ts.raw(t)

	assert.Equal(t, map[string]string{"policies": "burst daily default shadow"}, c.ConfigGet(ctx, "policies").Val())
	assert.Equal(t, map[string]string{"default-policy": "default"}, c.ConfigGet(ctx, "default-policy").Val())
	assert.Equal(t, map[string]string{
		"policy.burst": "5@1/s", "policy.daily": "10@1/s,20@20/d", "policy.default": "15@1/3s", "policy.shadow": "1@1/m shadow",
	}, c.ConfigGet(ctx, "policy.*").Val())
	assert.Equal(t, map[string]string{"policy.shadow": "1@1/m shadow"}, c.ConfigGet(ctx, "POLICY.SHADOW").Val(), "patterns in any case")
	assert.Empty(t, c.ConfigGet(ctx, "policy.gold").Val())
	// In the server's order: policies, then each policy by name.
	assert.Equal(t, "*6\r\n$8\r\npolicies\r\n$26\r\nburst daily default shadow\r\n"+
		"$12\r\npolicy.burst\r\n$5\r\n5@1/s\r\n$12\r\npolicy.daily\r\n$14\r\n10@1/s,20@20/d\r\n",
		rc.do("CONFIG", "GET", "policy.daily", "POLICIES", "policy.b*"))

	// A reload shows at once: a policy whose name has capitals (which it
	// keeps in the reply), a fraction of a token, an uncommon period, and
	// another default, whose first limit capacity and rate show.
	ts.store.mu.Lock()
	ts.store.policies["Gold"] = bucket.Policy{Name: "Gold", Limits: []bucket.Limit{{Capacity: 2500 * bucket.Token / 1000, Rate: bucket.Every(90 * time.Second)}}}
	delete(ts.store.policies, "shadow")
	ts.store.def = "burst"
	ts.store.mu.Unlock()
	assert.Equal(t, map[string]string{
		"capacity": "5", "rate": "1/s", "default-policy": "burst", "policies": "Gold burst daily default",
		"policy.Gold": "2.5@1/1m30s", "policy.burst": "5@1/s", "policy.daily": "10@1/s,20@20/d", "policy.default": "15@1/3s",
	}, getConfig(t, c, "capacity", "rate", "default-policy", "polic*"))
	assert.Equal(t, map[string]string{"policy.Gold": "2.5@1/1m30s"}, c.ConfigGet(ctx, "policy.gold").Val())

	// Policies cannot be set here: a reload of the file would undo it.
	const refused = "can't set immutable config: policies come from the --config file: edit it and reload (SIGHUP or POST /v1/reload)"
	for _, tt := range []struct{ args []string }{
		{[]string{"CONFIG", "SET", "policy.burst", "10@1/s"}},
		{[]string{"CONFIG", "SET", "policy.Gold", "1@1/s"}},
		{[]string{"CONFIG", "SET", "policy.new", "1@1/s"}},
		{[]string{"CONFIG", "SET", "policies", "burst"}},
		{[]string{"CONFIG", "SET", "default-policy", "daily"}},
		{[]string{"CONFIG", "SET", "maxmemory", "1gb", "POLICY.burst", "1@1/s"}},
	} {
		name := tt.args[len(tt.args)-2]
		if !strings.HasPrefix(strings.ToLower(name), "policy.") {
			name = strings.ToLower(name)
		}
		assert.Equal(t, "-ERR CONFIG SET failed (possibly related to argument '"+name+"') - "+refused+"\r\n", rc.do(tt.args...), "%q", tt.args)
	}
	err := c.ConfigSet(ctx, "policy.daily", "1@1/s").Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "edit it and reload")
	assert.Equal(t, map[string]string{"maxmemory": "0", "policy.burst": "5@1/s", "default-policy": "burst"},
		getConfig(t, c, "maxmemory", "policy.burst", "default-policy"), "nothing changed")
}

func TestPolicyValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    bucket.Policy
		want string
	}{
		{bucket.Policy{Limits: []bucket.Limit{{Capacity: 5 * bucket.Token, Rate: bucket.Every(3 * time.Second)}}}, "5@1/3s"},
		{bucket.Policy{Limits: []bucket.Limit{
			{Capacity: 100 * bucket.Token, Rate: bucket.PerSecond(10)},
			{Capacity: 100000 * bucket.Token, Rate: bucket.Rate{Tokens: 100000 * bucket.Token, Per: 24 * time.Hour}},
		}}, "100@10/s,100000@100000/d"},
		{bucket.Policy{Shadow: true, Limits: []bucket.Limit{{Capacity: bucket.Token / 4, Rate: bucket.Rate{Tokens: bucket.Token / 2, Per: time.Hour}}}}, "0.25@0.5/h shadow"},
		{bucket.Policy{Limits: []bucket.Limit{{Capacity: 3 * bucket.Token, Rate: bucket.Rate{Tokens: 7 * bucket.Token, Per: 2 * time.Hour}}}}, "3@7/2h0m0s"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, policyValue(tt.p))
		// Each limit reads back as --capacity and --rate read it.
		for i, part := range strings.Split(strings.TrimSuffix(tt.want, " shadow"), ",") {
			capacity, rate, ok := strings.Cut(part, "@")
			require.True(t, ok, part)
			c, err := bucket.ParseTokens(capacity)
			require.NoError(t, err)
			r, err := bucket.ParseRate(rate)
			require.NoError(t, err)
			assert.Equal(t, tt.p.Limits[i], bucket.Limit{Capacity: c, Rate: r}, part)
		}
	}
}

// INFO counts each policy's decisions: takes, not peeks; a shadow policy's
// refusals count as denied though the client is told to go on.
func TestInfoPolicies(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	take := func(args ...any) []any {
		t.Helper()
		v, err := c.Do(ctx, append([]any{"BUCKET.TAKE"}, args...)...).Slice()
		require.NoError(t, err)
		return v
	}
	for range 2 {
		take("joe")
	}
	take("joe", 0) // a peek
	for range 6 {
		take("ann", "POLICY", "burst")
	}
	take("sam", "POLICY", "shadow")
	assert.Equal(t, int64(1), take("sam", "POLICY", "shadow")[0], "allowed")
	take("dan", "11", "POLICY", "daily") // over a capacity: denied

	assert.Equal(t, "# Policies\r\n"+
		"policies:4\r\n"+
		"default_policy:default\r\n"+
		"policy_burst:allowed=5,denied=1,shadow=0\r\n"+
		"policy_daily:allowed=0,denied=1,shadow=0\r\n"+
		"policy_default:allowed=2,denied=0,shadow=0\r\n"+
		"policy_shadow:allowed=1,denied=1,shadow=1\r\n",
		c.Info(ctx, "policies").Val())

	_, f := infoFields(t, c.Info(ctx).Val())
	assert.Equal(t, "allowed=5,denied=1,shadow=0", f["policy_burst"], "in the default sections")
}

func TestSave(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)

	assert.Equal(t, epoch.Add(-time.Hour).Unix(), c.LastSave(ctx).Val())
	ts.store.advance(time.Minute)
	require.NoError(t, c.Save(ctx).Err())
	assert.Equal(t, epoch.Add(time.Minute).Unix(), c.LastSave(ctx).Val())

	// BGSAVE saves on its own goroutine; a second one while it runs is
	// refused, as is SAVE.
	entered, release := make(chan struct{}), make(chan struct{})
	ts.store.mu.Lock()
	ts.store.saveHook = func() { close(entered); <-release }
	ts.store.mu.Unlock()
	assert.Equal(t, "Background saving started", c.BgSave(ctx).Val())
	<-entered
	assert.EqualError(t, c.BgSave(ctx).Err(), "ERR Background save already in progress")
	assert.EqualError(t, c.Save(ctx).Err(), "ERR Background save already in progress")
	_, f := infoFields(t, c.Info(ctx, "persistence").Val())
	assert.Equal(t, "1", f["rdb_bgsave_in_progress"])
	ts.store.mu.Lock()
	ts.store.saveHook = nil
	ts.store.saveErr = errDisk
	ts.store.mu.Unlock()
	close(release)
	// Shutdown waits for the BGSAVE; after it, INFO tells how it went.
	require.NoError(t, ts.Shutdown(ctxT(t)))
	assert.False(t, ts.saving.Load())
	assert.True(t, ts.saveFailed.Load())

	ts2 := start(t, Config{})
	rc := ts2.raw(t)
	assert.Equal(t, "-ERR syntax error\r\n", rc.do("BGSAVE", "NOW"))
	assert.Equal(t, "+Background saving started\r\n", rc.do("BGSAVE", "SCHEDULE"))
	ts2.store.mu.Lock()
	ts2.store.saveErr = errDisk
	ts2.store.mu.Unlock()
	assert.Equal(t, "-ERR fake: disk on fire\r\n", rc.do("SAVE"))
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
