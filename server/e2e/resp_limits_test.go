package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// procKB reads a field (VmRSS, VmHWM) of /proc/<pid>/status, in KiB.
func procKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if os.IsNotExist(err) {
		t.Skip("no /proc: RSS cannot be read here")
	}
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	require.NotNil(t, m, "no %s in /proc/%d/status", field, pid)
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	require.NoError(t, err)
	return n
}

// respDo sends one inline command on rw and reads a one-line reply.
func respDo(t *testing.T, nc net.Conn, r *bufio.Reader, cmd string) string {
	t.Helper()
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := nc.Write([]byte(cmd + "\r\n"))
	require.NoError(t, err)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	return strings.TrimRight(line, "\r\n")
}

// commandsProcessed reads INFO stats' total_commands_processed.
func commandsProcessed(t *testing.T, nc net.Conn, r *bufio.Reader) int64 {
	t.Helper()
	head := respDo(t, nc, r, "INFO stats")
	n, err := strconv.Atoi(strings.TrimPrefix(head, "$"))
	require.NoError(t, err, head)
	body := make([]byte, n+2)
	_, err = io.ReadFull(r, body)
	require.NoError(t, err)
	m := regexp.MustCompile(`total_commands_processed:(\d+)`).FindSubmatch(body)
	require.NotNil(t, m)
	v, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return v
}

// TestRESPOutputLimitUnderPipelinesNotRead is issue 9's item 2: 200
// clients each pipeline 2000 COMMAND DOCS (about 25 MB of replies each)
// and read nothing. The server stops reading them once their replies
// pile up, so its peak RSS grows by less than 256 MB (it grew by 2.7 GB
// before), and another client is still answered meanwhile.
func TestRESPOutputLimitUnderPipelinesNotRead(t *testing.T) {
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"))
	pid := p.cmd.Process.Pid
	base := procKB(t, pid, "VmRSS")

	const clients, perClient = 200, 2000
	batch := []byte(strings.Repeat("COMMAND DOCS\r\n", perClient))
	conns := make([]net.Conn, clients)
	var wg sync.WaitGroup
	for i := range conns {
		nc, err := net.DialTimeout("tcp", p.respAddr, 10*time.Second)
		require.NoError(t, err)
		conns[i] = nc
		t.Cleanup(func() { nc.Close() })
		wg.Go(func() {
			// 28 KB fits the socket buffers: the write returns at once,
			// whatever the server does with it.
			nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
			_, err := nc.Write(batch)
			assert.NoError(t, err)
		})
	}
	wg.Wait()

	// Another client: answered while the 200 are stuck. Wait until the
	// server has run all it can (the count of commands stops moving), so
	// that the peak below is the peak of the whole episode.
	other, err := net.DialTimeout("tcp", p.respAddr, 10*time.Second)
	require.NoError(t, err)
	defer other.Close()
	r := bufio.NewReader(other)
	prev := int64(-1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := commandsProcessed(t, other, r)
		if n == prev+1 { // only the last INFO ran since
			break
		}
		require.True(t, time.Now().Before(deadline), "the server kept running commands for a minute")
		prev = n
		time.Sleep(500 * time.Millisecond) // a sampling period, not an ordering of events
	}
	assert.Less(t, prev, int64(clients*perClient), "the server stopped reading clients that do not read")
	assert.Equal(t, "+PONG", respDo(t, other, r, "PING"))
	assert.Equal(t, "*6", respDo(t, other, r, "BUCKET.TAKE k"))

	peak := procKB(t, pid, "VmHWM")
	t.Logf("RSS: %d MiB before, peak %d MiB (+%d MiB) with %d clients not reading; %d of %d commands run",
		base>>10, peak>>10, (peak-base)>>10, clients, prev, clients*perClient)
	assert.Less(t, peak-base, int64(256<<10), "peak RSS growth, KiB")

	for _, nc := range conns {
		nc.Close()
	}
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
