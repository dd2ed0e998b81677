package storage

import (
	"runtime"
	"syscall"
)

// backgroundNice is how much lower than the rest of the process the
// flusher's thread runs: nice +10 weighs about a tenth of nice 0 in Linux's
// scheduler, so that takes keep the CPU while a checkpoint encodes pages
// and bbolt commits them, and the checkpoint has whatever is left.
const backgroundNice = 10

// lowerPriority locks the calling goroutine to its thread and lowers that
// thread's scheduling priority (Linux's nice is per thread) by
// backgroundNice, and returns the thread's id, or 0 if it could not. The goroutine must keep the
// thread until it returns: Go then ends the thread rather than reuse it at
// the lower priority. (An unprivileged process may lower a thread's
// priority but not raise it back, so it is never given back.)
func lowerPriority() int {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid) // the raw value: 20 - nice
	if err == nil {
		err = syscall.Setpriority(syscall.PRIO_PROCESS, tid, 20-prio+backgroundNice)
	}
	if err != nil {
		runtime.UnlockOSThread()
		return 0
	}
	return tid
}
