package respcompat

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
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
	assert.Equal(t, []string{"Server", "Clients", "Memory", "Stats", "Persistence", "Keyspace", "Policies", "Top", "Bucketd"}, sections)
	assert.Equal(t, "7.0.0", f["redis_version"])
	assert.Equal(t, "standalone", f["redis_mode"])
	assert.Equal(t, ts.addr[strings.LastIndexByte(ts.addr, ':')+1:], f["tcp_port"])
	assert.Equal(t, "0", f["uptime_in_seconds"])
	assert.Equal(t, "1", f["connected_clients"])
	assert.Equal(t, "50", f["maxclients"])
	assert.Equal(t, "1", f["total_connections_received"])
	assert.Equal(t, "0", f["rejected_connections"])
	assert.NotEmpty(t, f["total_commands_processed"])
	assert.Equal(t, strconv.FormatInt(storetest.T0.Unix(), 10), f["rdb_last_save_time"], "when the store opened")
	assert.Equal(t, "ok", f["rdb_last_bgsave_status"])
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
		{[]any{"INFO", "all"}, append(slices.Clone(sections), "Commandstats")},
		{[]any{"INFO", "everything"}, append(slices.Clone(sections), "Commandstats")},
		{[]any{"INFO", "commandstats"}, []string{"Commandstats"}},
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
		"policy_shadow:allowed=1,denied=1,shadow=1\r\n"+
		"cl_throttle:allowed=0,denied=0\r\n",
		c.Info(ctx, "policies").Val())

	_, f := infoFields(t, c.Info(ctx).Val())
	assert.Equal(t, "allowed=5,denied=1,shadow=0", f["policy_burst"], "in the default sections")
}

// rdb_last_bgsave_status tells whether changes reach the disk now, as the
// store's health says: "ok" while they do, "err" after a failed write
// (whoever made it: SAVE, BGSAVE or the interval flush) and once the store
// is closed.
func TestInfoPersistenceStatus(t *testing.T) {
	t.Parallel()
	status := func(t *testing.T, ts *testServer) string {
		t.Helper()
		_, f := infoFields(t, ts.client(t).Info(ctxT(t), "persistence").Val())
		return f["rdb_last_bgsave_status"]
	}
	t.Run("healthy, then closed", func(t *testing.T) {
		t.Parallel()
		ts := start(t, Config{})
		assert.Equal(t, "ok", status(t, ts))
		require.NoError(t, ts.db.Close())
		assert.Equal(t, "err", status(t, ts))
	})
	t.Run("a write failed", func(t *testing.T) {
		t.Parallel()
		st := newStack(t, storage.Options{})
		ts := serve(t, st, unready{st.lim}, Config{})
		assert.Equal(t, "err", status(t, ts))
	})
}
