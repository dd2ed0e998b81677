package respcompat

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's workflow with the real redis-cli (Debian's redis-tools; CI
// installs it): its replies, as it prints them with no terminal, for the
// commands the README shows. Skipped where redis-cli is not installed.
func TestRedisCLI(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed (apt-get install redis-tools)")
	}
	ts := start(t, Config{RequirePass: "s3cret"})
	host, port, err := net.SplitHostPort(ts.addr)
	require.NoError(t, err)
	cli := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port, "--no-auth-warning", "-a", "s3cret"}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "redis-cli %q: %s", args, out)
		return string(out)
	}

	assert.Equal(t, "PONG\n", cli("PING"))
	assert.Equal(t, "0\n16\n15\n-1\n2\n", cli("CL.THROTTLE", "user123", "15", "30", "60"))
	assert.Equal(t, "1\n15\n14\n0\n3000\ndefault\n", cli("BUCKET.TAKE", "joe"))
	assert.Equal(t, "tokens\n14\ncapacity\n15\nrate\n1/3s\nupdated_at_ms\n"+ms(ts.clock.Wall())+"\nfull_in_ms\n3000\npolicy\ndefault\n",
		cli("HGETALL", "joe"))
	assert.Equal(t, "(cl.throttle)\n", cli("HGET", "user123", "policy"))
	assert.Equal(t, "2\n", cli("DBSIZE"))
	assert.Equal(t, "1\n", cli("DEL", "joe"))
	assert.Equal(t, "0\n", cli("EXISTS", "joe"))
	assert.True(t, strings.HasPrefix(cli("nope"), "ERR unknown command 'nope', with args beginning with: \n"))
	assert.True(t, strings.HasPrefix(cli("INFO", "policies"), "# Policies\r\n"), "INFO is printed as it is")
}

// redisCLI returns a runner of the real redis-cli against a test server:
// it gives stdin (commands, one a line, as a user pipes them) and args,
// and returns what redis-cli printed. Outside CI, a missing redis-cli
// skips the test; in CI (CI=true) it fails it.
func redisCLI(t *testing.T) func(ts *testServer, stdin string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-cli is not installed (apt-get install redis-tools)")
		}
		t.Skip("redis-cli is not installed (apt-get install redis-tools)")
	}
	return func(ts *testServer, stdin string, args ...string) string {
		t.Helper()
		host, port, err := net.SplitHostPort(ts.addr)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port, "--no-auth-warning"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "redis-cli %q: %s", args, out)
		return string(out)
	}
}
