package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writtenDataFile runs bucketd on a new data file, takes from n keys
// user:0 ... over HTTP, stops it with SIGTERM, and returns the file's
// bytes. The log stays small, so every page is written once, by the last
// checkpoint: a key's name in the file is in its live page.
func writtenDataFile(t *testing.T, n int) []byte {
	t.Helper()
	data := filepath.Join(t.TempDir(), "bucketd.db")
	p := startBinary(t, "--data", data, "--capacity", "5", "--rate", "1/h")
	for i := range n {
		code, _ := get(t, fmt.Sprintf("http://%s/user:%d", p.httpAddr, i))
		require.Equal(t, 200, code)
	}
	require.Equal(t, 0, p.stop(t, syscall.SIGTERM))
	b, err := os.ReadFile(data)
	require.NoError(t, err)
	return b
}

// startOutcome starts bucketd on the data file at path and reports how
// that went: started (then stopped with SIGTERM), or its exit code and
// standard error.
func startOutcome(t *testing.T, path string, args ...string) (started bool, code int, stderr string) {
	t.Helper()
	cmd := exec.Command(bucketdBinary(t), append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0", "--data", path}, args...)...)
	pipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var log strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `msg="bucketd started"`) {
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
			}
			require.NoError(t, cmd.Wait(), "a started bucketd stops with exit 0: %s", log.String())
			return true, 0, log.String()
		}
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	require.True(t, ok, "bucketd ended without starting, and without an exit code: %v", err)
	return false, ee.ExitCode(), log.String()
}

// TestBinaryRefusesDamagedDataFile truncates and flips bytes of a data file
// that the binary wrote: the binary either starts, or exits 1 with one
// line that names the file and says what is wrong; never a panic, a
// fault, or a stack trace. bucketd check agrees.
func TestBinaryRefusesDamagedDataFile(t *testing.T) {
	orig := writtenDataFile(t, 300)
	dir := t.TempDir()
	code, out, _ := runBinary(t, dir, nil, "check", writeBytes(t, dir, "sound.db", orig))
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "sound (format 3")
	assert.Contains(t, out, "300 keys")

	le := binary.LittleEndian
	used := int(max(le.Uint64(orig[16+40:]), le.Uint64(orig[4096+16+40:]))) * 4096 // the meta pages' high-water mark
	type damage struct {
		name string
		b    []byte
	}
	var cases []damage
	for _, n := range []int{8 << 10, 8<<10 + 123, 12 << 10, used / 2, used - 1} {
		cases = append(cases, damage{fmt.Sprintf("cut to %d bytes", n), orig[:n]})
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for range 12 {
		b := bytes.Clone(orig)
		off := 2*4096 + rng.IntN(used-2*4096)
		b[off] ^= byte(1 + rng.IntN(255))
		cases = append(cases, damage{fmt.Sprintf("byte %d flipped", off), b})
	}
	for _, c := range cases {
		path := writeBytes(t, t.TempDir(), "bucketd.db", c.b)
		started, code, stderr := startOutcome(t, path)
		assert.NotContains(t, stderr, "panic", c.name)
		assert.NotContains(t, stderr, "goroutine ", c.name)
		checkCode, checkOut, _ := runBinary(t, dir, nil, "check", path)
		if started {
			t.Logf("%s: started", c.name)
			continue
		}
		assert.Equal(t, 1, code, "%s: %s", c.name, stderr)
		last := lastLine(stderr)
		assert.True(t, strings.HasPrefix(last, "bucketd: storage: "+path+" is "), "%s: %q names the file", c.name, last)
		assert.Regexp(t, `is (damaged|not a bucketd database)`, last, c.name)
		assert.NotEqual(t, 0, checkCode, "%s: check calls a file that bucketd refuses damaged: %s", c.name, checkOut)
		t.Logf("%s: %s", c.name, last)
	}
}

// TestBinaryRepair flips a byte of a key's record: bucketd refuses the
// file, check names the page and its keys, and --repair starts without
// them, logging what it dropped; the file is then sound.
func TestBinaryRepair(t *testing.T) {
	orig := writtenDataFile(t, 300)
	off := bytes.Index(orig, []byte("user:42"))
	require.Positive(t, off)
	b := bytes.Clone(orig)
	b[off+len("user:42")+5] ^= 0x20
	dir := t.TempDir()
	path := writeBytes(t, dir, "bucketd.db", b)

	started, code, stderr := startOutcome(t, path)
	require.False(t, started)
	assert.Equal(t, 1, code)
	assert.Contains(t, lastLine(stderr), path+" is damaged: page ")
	assert.Contains(t, lastLine(stderr), "checksum")

	code, out, _ := runBinary(t, dir, nil, "check", path)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "damaged")
	assert.Contains(t, out, `"user:42"`, "check names the keys of the damaged page")
	assert.Contains(t, out, "--repair")

	started, _, stderr = startOutcome(t, path, "--repair")
	require.True(t, started, stderr)
	assert.Contains(t, stderr, "storage: repair: dropped page")
	assert.Contains(t, stderr, `user:42`)
	assert.FileExists(t, path+".damaged-1")

	code, out, _ = runBinary(t, dir, nil, "check", path)
	assert.Equal(t, 0, code, "repaired: %s", out)
}

func writeBytes(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
