package respcompat

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInfoMemory: INFO memory has Redis's fields, with this process's real
// figures: the runtime's memory in use, and the RSS the kernel reports.
func TestInfoMemory(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", "2mb").Err())
	info, err := c.Info(ctx, "memory").Result()
	require.NoError(t, err)
	sections, f := infoFields(t, info)
	assert.Equal(t, []string{"Memory"}, sections)
	num := func(name string) uint64 {
		t.Helper()
		n, err := strconv.ParseUint(f[name], 10, 64)
		require.NoError(t, err, "%s: %q", name, f[name])
		return n
	}
	used, rss, peak := num("used_memory"), num("used_memory_rss"), num("used_memory_peak")
	assert.Greater(t, used, uint64(1<<20), "a Go process uses more than 1 MiB")
	assert.Greater(t, rss, uint64(1<<20))
	assert.GreaterOrEqual(t, peak, used)
	assert.Equal(t, uint64(2<<20), num("maxmemory"))
	assert.Equal(t, "2.00M", f["maxmemory_human"])
	assert.Equal(t, "noeviction", f["maxmemory_policy"])
	assert.Regexp(t, `^\d+\.\d\dM$`, f["used_memory_human"])
	assert.Regexp(t, `^\d+\.\d\d$`, f["mem_fragmentation_ratio"])
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1.00K", 1536: "1.50K", 5 << 20: "5.00M", 3 << 30: "3.00G"} {
		assert.Equal(t, want, humanBytes(n), "%d", n)
	}
	for v, want := range map[string]uint64{"0": 0, "100": 100, "1k": 1000, "1kb": 1024, "2MB": 2 << 20, "1g": 1e9, "x": 0} {
		assert.Equal(t, want, memBytes(v), "%q", v)
	}
}

// TestRedisCLIStat runs redis-cli --stat for its first line of figures:
// keys, memory (from used_memory: it showed a huge negative number before
// INFO had a Memory section), clients, requests, connections.
func TestRedisCLIStat(t *testing.T) {
	t.Parallel()
	redisCLI(t) // skips or fails without redis-cli
	bin, _ := exec.LookPath("redis-cli")
	ts := start(t, Config{})
	rc := ts.raw(t)
	rc.do("BUCKET.TAKE", "a")
	rc.do("BUCKET.TAKE", "b")
	host, port, err := net.SplitHostPort(ts.addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "--stat", "-i", "0.1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	var lines []string
	for len(lines) < 3 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.Len(t, lines, 3, "the header's two lines and one of figures")
	// keys mem clients blocked requests connections
	m := regexp.MustCompile(`^(\d+)\s+(\d+(?:\.\d+)?[BKMG])\s+(\d+)\s+(\d+)\s+(\d+) \(\+\d+\)\s+(\d+)`).FindStringSubmatch(lines[2])
	require.NotNil(t, m, "figures: %q", lines[2])
	assert.Equal(t, "2", m[1], "keys")
	assert.Equal(t, "2", m[3], "clients: the raw connection and redis-cli")
	assert.Equal(t, "0", m[4], "blocked")
}
