package respcompat

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMonitor: a MONITOR client sees every command of others, in Redis's
// format, at the fake clock's time, with AUTH's secrets redacted and admin
// commands not shown; the commands of a transaction come between MULTI and
// EXEC.
func TestMonitor(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{RequirePass: "pw", AdminToken: "tok"})
	mon := ts.raw(t)
	assert.Equal(t, "+OK\r\n", mon.do("AUTH", "admin", "tok"))
	assert.Equal(t, "+OK\r\n", mon.do("MONITOR"))

	rc := ts.raw(t)
	assert.Equal(t, "+OK\r\n", rc.do("AUTH", "default", "pw"))
	rc.do("BUCKET.TAKE", "k", "2")
	rc.do("ECHO", "a \"q\" \\ \r\n\x01é")
	rc.do("HELLO", "2", "AUTH", "default", "pw", "SETNAME", "x")
	rc.do("MULTI")
	rc.do("BUCKET.TAKE", "k")
	rc.do("EXEC")
	adm := ts.raw(t)
	assert.Equal(t, "+OK\r\n", adm.do("AUTH", "admin", "tok"))
	assert.Equal(t, "+OK\r\n", adm.do("SAVE"), "an admin command: not shown")
	adm.do("PING")

	now := ts.clock.Wall()
	ts6 := fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
	rca, adma := rc.nc.LocalAddr().String(), adm.nc.LocalAddr().String()
	want := []string{
		`+` + ts6 + ` [0 ` + rca + `] "AUTH" "(redacted)" "(redacted)"`,
		`+` + ts6 + ` [0 ` + rca + `] "BUCKET.TAKE" "k" "2"`,
		`+` + ts6 + ` [0 ` + rca + `] "ECHO" "a \"q\" \\ \r\n\x01\xc3\xa9"`,
		`+` + ts6 + ` [0 ` + rca + `] "HELLO" "2" "AUTH" "(redacted)" "(redacted)" "SETNAME" "x"`,
		`+` + ts6 + ` [0 ` + rca + `] "MULTI"`,
		`+` + ts6 + ` [0 ` + rca + `] "BUCKET.TAKE" "k"`,
		`+` + ts6 + ` [0 ` + rca + `] "EXEC"`,
		`+` + ts6 + ` [0 ` + adma + `] "AUTH" "(redacted)" "(redacted)"`,
		`+` + ts6 + ` [0 ` + adma + `] "PING"`,
	}
	for i, w := range want {
		line, err := mon.r.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, w+"\r\n", line, "line %d", i)
	}
}

// TestMonitorNeedsAdmin: with an admin token, MONITOR is an admin command;
// inside MULTI it is refused.
func TestMonitorNeedsAdmin(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{AdminToken: "tok"})
	rc := ts.raw(t)
	assert.Equal(t, "-NOPERM this user has no permissions to run the 'monitor' command\r\n", rc.do("MONITOR"))
	assert.Equal(t, "+OK\r\n", rc.do("AUTH", "admin", "tok"))
	assert.Equal(t, "+OK\r\n", rc.do("MULTI"))
	assert.Equal(t, "-ERR Command not allowed inside a transaction\r\n", rc.do("MONITOR"))
}

// TestMonitorSlowClientIsDisconnected: a monitor that does not read is
// disconnected once it falls behind by the output limit, and the clients
// it watches are not slowed.
func TestMonitorSlowClientIsDisconnected(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{OutputLimit: 16 << 10})
	mon := ts.raw(t)
	assert.Equal(t, "+OK\r\n", mon.do("MONITOR"))
	rc := ts.raw(t)
	big := strings.Repeat("x", 4096)
	// Far more than the socket buffers and the limit hold, all answered.
	for range 4000 {
		require.Equal(t, "$4096\r\n"+big+"\r\n", rc.do("ECHO", big))
	}
	mon.expectClosed()
}

// TestMonitorRedisCLI: redis-cli MONITOR prints the stream.
func TestMonitorRedisCLI(t *testing.T) {
	t.Parallel()
	redisCLI(t)
	bin, _ := exec.LookPath("redis-cli")
	ts := start(t, Config{})
	host, port, err := net.SplitHostPort(ts.addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "MONITOR")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	require.True(t, sc.Scan())
	assert.Equal(t, "OK", sc.Text())
	ts.raw(t).do("CL.THROTTLE", "k", "1", "1", "60")
	require.True(t, sc.Scan())
	assert.Regexp(t, `^\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "CL.THROTTLE" "k" "1" "1" "60"$`, sc.Text())
}
