package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBinarySIGTERMKeepsTokens(t *testing.T) {
	data := filepath.Join(t.TempDir(), "bucketd.db")
	p := startBinary(t, "--data", data, "--capacity", "3", "--rate", "1/h")
	for range 3 {
		code, _ := get(t, "http://"+p.httpAddr+"/joe")
		require.Equal(t, 200, code)
	}
	code, _ := get(t, "http://"+p.httpAddr+"/joe")
	require.Equal(t, 429, code)
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM), "SIGTERM exits 0")

	p = startBinary(t, "--data", data, "--capacity", "3", "--rate", "1/h")
	code, body := get(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 429, code, "the tokens taken before the restart stay taken")
	assert.Equal(t, `{"detail":"Too Many Requests"}`, body)
	code, _ = get(t, "http://"+p.httpAddr+"/ann")
	assert.Equal(t, 200, code, "other keys are untouched")
	assert.Equal(t, 0, p.stop(t, syscall.SIGINT), "SIGINT exits 0")
}

func TestBinarySIGKILLSyncAlwaysLosesNothingAnswered(t *testing.T) {
	data := filepath.Join(t.TempDir(), "bucketd.db")
	args := []string{"--data", data, "--capacity", "10", "--rate", "1/h", "--sync", "always", "--sync-interval", "1h"}
	p := startBinary(t, args...)
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for range 4 { // concurrent takes share commits
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				resp, err := http.Get("http://" + p.httpAddr + "/joe")
				if err != nil {
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		}()
	}
	wg.Wait()
	close(codes)
	allowed := 0
	for c := range codes {
		if c == 200 {
			allowed++
		}
	}
	require.Equal(t, 10, allowed)
	assert.Equal(t, -1, p.stop(t, syscall.SIGKILL))

	p = startBinary(t, args...)
	code, _ := get(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 429, code, "every answered take survived SIGKILL")
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

func TestBinaryFileInUse(t *testing.T) {
	data := filepath.Join(t.TempDir(), "bucketd.db")
	p := startBinary(t, "--data", data)
	cmd := exec.Command(bucketdBinary(t), "--data", data, "--http-addr", "127.0.0.1:0", "--resp-addr", "")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "bucketd.db is in use by another process")
	assert.Equal(t, 1, cmd.ProcessState.ExitCode())
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestBinarySIGKILLIntervalKeepsTakesOlderThanTheBound checks the default
// durability mode's promise on the real binary: under --sync interval the
// log is written out every 100ms (or every --sync-interval, if shorter), and
// the operating system keeps what was written, so a SIGKILL loses at most
// the takes of the last 100ms (and of a write still under way), however
// long the interval. Takes run back to back for a while, then the process
// is killed; after a restart on the same file, every take answered more
// than the margin before the kill must have survived. It asserts only that
// bound, never that recent takes were lost, so a slow machine cannot make
// it fail: there, the survivors include more of the recent takes, and the
// early ones are the same.
func TestBinarySIGKILLIntervalKeepsTakesOlderThanTheBound(t *testing.T) {
	for _, tt := range []struct {
		name     string
		interval time.Duration
		// margin: up to a write's period until the write of a take starts,
		// and more for it to be made on a loaded machine.
		margin time.Duration
	}{
		{"sync every 200ms", 200 * time.Millisecond, 600 * time.Millisecond},
		// No sync before the kill: what survives was written out.
		{"sync every hour", time.Hour, time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) { sigkillKeepsTakesOlderThan(t, tt.interval, tt.margin) })
	}
}

func sigkillKeepsTakesOlderThan(t *testing.T, interval, margin time.Duration) {
	const (
		run      = 2500 * time.Millisecond // of takes before the kill
		maxTakes = 100_000
		capacity = 1_000_000 // more than maxTakes: every take is answered 200
	)
	data := filepath.Join(t.TempDir(), "bucketd.db")
	// At 1/h, the bucket refills less than a token during the test, so the
	// whole part of its remaining tokens counts the takes it kept.
	args := []string{"--data", data, "--capacity", strconv.Itoa(capacity), "--rate", "1/h",
		"--sync", "interval", "--sync-interval", interval.String(), "--resp-addr", ""}
	p := startBinary(t, args...)
	url := "http://" + p.httpAddr + "/k"

	client := &http.Client{Timeout: 30 * time.Second}
	stop := make(chan struct{})
	var (
		answered []time.Time // when each take was answered
		takeErr  error
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		for range maxTakes {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get(url)
			if err != nil {
				takeErr = err
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("take %d answered %d", len(answered), resp.StatusCode)
			}
			if err != nil {
				takeErr = err
				return
			}
			answered = append(answered, time.Now())
		}
	}()
	timer := time.NewTimer(run)
	select {
	case <-timer.C:
	case <-done: // maxTakes reached, or an error
		timer.Stop()
	}
	close(stop)
	<-done
	require.NoError(t, takeErr)
	killed := time.Now()
	require.Equal(t, -1, p.stop(t, syscall.SIGKILL))

	early := 0 // takes answered more than margin before the kill
	for _, at := range answered {
		if killed.Sub(at) > margin {
			early++
		}
	}
	require.Positive(t, early, "no take was answered more than %v before the kill: the test proves nothing", margin)

	p = startBinary(t, args...)
	remaining := peek(t, p.httpAddr, "k")
	whole, _, _ := strings.Cut(remaining, ".")
	left, err := strconv.Atoi(whole)
	require.NoError(t, err, remaining)
	kept := capacity - left
	t.Logf("%d takes answered, %d of them more than %v before SIGKILL; %d survived", len(answered), early, margin, kept)
	assert.GreaterOrEqual(t, kept, early, "a take answered more than %v (--sync-interval %v) before SIGKILL was lost", margin, interval)
	assert.LessOrEqual(t, kept, len(answered), "more takes survived than were made")
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestBinaryRefusesEmptyDataFile: a data file of 0 bytes, as a first start
// that failed on a full disk leaves it, is refused rather than taken for a
// new database, and left as it is; a path with no file still starts.
func TestBinaryRefusesEmptyDataFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))

	code, stdout, stderr := runBinary(t, dir, nil, "--data", empty, "--http-addr", "127.0.0.1:0", "--resp-addr", "")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "empty.db")
	assert.Contains(t, stderr, "empty (0 bytes)")
	fi, err := os.Stat(empty)
	require.NoError(t, err)
	assert.Zero(t, fi.Size(), "the empty file is left untouched")

	fresh := filepath.Join(dir, "fresh.db")
	p := startBinary(t, "--data", fresh)
	code, _ = get(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 200, code)
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
	fi, err = os.Stat(fresh)
	require.NoError(t, err)
	assert.Positive(t, fi.Size(), "a fresh path starts, and becomes a database")
}
