package respcompat

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminRole: with an admin token, the admin commands need AUTH admin
// <token>; ordinary clients (with or without requirepass) get NOPERM, as a
// Redis ACL user without the permission does, and still take.
func TestAdminRole(t *testing.T) {
	t.Parallel()
	const noperm = "-NOPERM this user has no permissions to run the '%s' command\r\n"
	admin := [][]string{
		{"FLUSHALL"}, {"FLUSHDB"}, {"DEL", "k"}, {"UNLINK", "k"}, {"HSET", "k", "tokens", "1"}, {"HMSET", "k", "tokens", "1"},
		{"CONFIG", "SET", "maxmemory", "1"}, {"CONFIG", "RESETSTAT"}, {"CONFIG", "REWRITE"}, {"SAVE"}, {"BGSAVE"}, {"SHUTDOWN"},
	}
	names := []string{"flushall", "flushdb", "del", "unlink", "hset", "hmset", "config|set", "config|resetstat", "config|rewrite", "save", "bgsave", "shutdown"}

	for _, pass := range []string{"", "s3cret"} {
		t.Run("requirepass="+pass, func(t *testing.T) {
			t.Parallel()
			ts := start(t, Config{RequirePass: pass, AdminToken: "t0ken"})
			rc := ts.raw(t)
			if pass != "" {
				assert.Equal(t, "+OK\r\n", rc.do("AUTH", pass))
			}
			for i, cmd := range admin {
				assert.Equal(t, fmt.Sprintf(noperm, names[i]), rc.do(cmd...), "%q", cmd)
			}
			assert.Equal(t, "*6\r\n:1\r\n:15\r\n:14\r\n:0\r\n:3000\r\n$7\r\ndefault\r\n", rc.do("BUCKET.TAKE", "k"), "an ordinary client takes")
			assert.Equal(t, "$7\r\ndefault\r\n", rc.do("HGET", "k", "policy"))
			assert.Equal(t, "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n", rc.do("CONFIG", "GET", "maxmemory"), "CONFIG GET is not an admin command")

			// Inside MULTI, NOPERM is an error while queueing.
			assert.Equal(t, "+OK\r\n", rc.do("MULTI"))
			assert.Equal(t, fmt.Sprintf(noperm, "flushall"), rc.do("FLUSHALL"))
			assert.Equal(t, "-EXECABORT Transaction discarded because of previous errors.\r\n", rc.do("EXEC"))

			assert.Equal(t, "-WRONGPASS invalid username-password pair or user is disabled.\r\n", rc.do("AUTH", "admin", "wrong"))
			assert.Equal(t, "-WRONGPASS invalid username-password pair or user is disabled.\r\n", rc.do("AUTH", "root", "t0ken"))
			assert.Equal(t, fmt.Sprintf(noperm, "del"), rc.do("DEL", "k"), "a failed AUTH changes nothing")
			assert.Equal(t, "+OK\r\n", rc.do("AUTH", "admin", "t0ken"))
			assert.Equal(t, ":1\r\n", rc.do("DEL", "k"))
			assert.Equal(t, "+OK\r\n", rc.do("FLUSHALL"))
			assert.Equal(t, "+OK\r\n", rc.do("CONFIG", "SET", "maxmemory", "1"))

			// AUTH as the default user again drops the admin role.
			if pass != "" {
				assert.Equal(t, "+OK\r\n", rc.do("AUTH", "default", pass))
				assert.Equal(t, fmt.Sprintf(noperm, "flushall"), rc.do("FLUSHALL"))
			}
		})
	}
}

// TestAdminRoleWithoutToken: without an admin token, RESP is as before:
// every client runs every command, and there is no admin user.
func TestAdminRoleWithoutToken(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	assert.Equal(t, "+OK\r\n", rc.do("FLUSHALL"))
	assert.Equal(t, ":0\r\n", rc.do("DEL", "k"))
	assert.Equal(t, "-WRONGPASS invalid username-password pair or user is disabled.\r\n", rc.do("AUTH", "admin", ""))
}

// TestAdminRoleGoRedis: go-redis authenticates as the admin user with
// Username and Password, and as the default user with Password alone.
func TestAdminRoleGoRedis(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{RequirePass: "s3cret", AdminToken: "t0ken"})
	ctx := ctxT(t)
	plain := ts.client(t, func(o *redis.Options) { o.Password = "s3cret" })
	require.NoError(t, plain.Do(ctx, "BUCKET.TAKE", "k").Err())
	err := plain.FlushAll(ctx).Err()
	require.Error(t, err)
	assert.Equal(t, "NOPERM this user has no permissions to run the 'flushall' command", err.Error())

	adm := ts.client(t, func(o *redis.Options) { o.Username, o.Password = "admin", "t0ken" })
	assert.Equal(t, "OK", adm.FlushAll(ctx).Val())
	bad := ts.client(t, func(o *redis.Options) { o.Username, o.Password = "admin", "s3cret" })
	assert.ErrorContains(t, bad.Ping(ctx).Err(), "WRONGPASS")
}
