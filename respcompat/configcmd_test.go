package respcompat

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// dailyDefault returns testPolicies with the default policy made of daily's
// two limits.
func dailyDefault() []bucket.Policy {
	ps := slices.Clone(testPolicies)
	ps[0].Limits = ps[3].Limits
	return ps
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
	assert.Equal(t, map[string]string{"capacity": "15", "rate": "1/3s"}, c.ConfigGet(ctx, "[cr]a*").Val(), "Redis's glob classes")

	// Several patterns (Redis 7), each parameter once.
	assert.Equal(t, map[string]string{"capacity": "15", "rate": "1/3s"}, getConfig(t, c, "capacity", "rate", "cap*"))
	rc := ts.raw(t)
	assert.Equal(t, "*4\r\n$8\r\ncapacity\r\n$2\r\n15\r\n$4\r\nrate\r\n$4\r\n1/3s\r\n", rc.do("CONFIG", "GET", "rate", "capacity"), "in the server's order")
	assert.Equal(t, "-ERR wrong number of arguments for 'config|get' command\r\n", rc.do("CONFIG", "GET"))

	// A policy of several limits shows each.
	require.NoError(t, ts.lim.SetPolicies("default", dailyDefault()))
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
	p, err := ts.lim.Policy("")
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
	require.NoError(t, ts.lim.SetPolicies("default", dailyDefault()))
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
	gold := bucket.Policy{Name: "Gold", Limits: []bucket.Limit{{Capacity: 2500 * bucket.Token / 1000, Rate: bucket.Every(90 * time.Second)}}}
	require.NoError(t, ts.lim.SetPolicies("burst", []bucket.Policy{gold, testPolicies[0], testPolicies[1], testPolicies[3]}))
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
