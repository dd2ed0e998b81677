package storage_test

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// niceOf returns the nice value of thread tid of this process, from
// /proc/self/task/TID/stat (its 19th field).
func niceOf(t *testing.T, tid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/stat")
	require.NoError(t, err)
	// The command name, the second field, is in parentheses and may hold
	// spaces: count the fields after its closing one.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.Atoi(fields[19-3])
	require.NoError(t, err)
	return n
}

// TestFlusherRunsAtLowerPriority: the flusher (checkpoints, sweeps) runs on
// a thread of its own, 10 nice levels below the rest, so that on a busy
// core takes keep the CPU; the other threads keep their priority, and
// checkpoints still work.
func TestFlusherRunsAtLowerPriority(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Hour})
	require.Eventually(t, func() bool { return storage.FlusherThread(db) != 0 }, 10*time.Second, time.Millisecond,
		"the flusher lowers its thread's priority when it starts")
	tid := storage.FlusherThread(db)
	runtime.LockOSThread() // this goroutine's thread, as any other than the flusher's
	defer runtime.UnlockOSThread()
	self := syscall.Gettid()
	require.NotEqual(t, self, tid)
	base := niceOf(t, self)
	assert.Equal(t, base+10, niceOf(t, tid))
	take(t, db, def, "a", five, tok)
	require.NoError(t, db.Save(), "the flusher makes the checkpoint")
	assert.Equal(t, base+10, niceOf(t, tid))
	assert.Equal(t, base, niceOf(t, self), "other threads keep their priority")
}
