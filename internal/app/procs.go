package app

import (
	"strings"

	"github.com/bucketd/bucketd/storage"
)

// MinProcs returns how many Ps (GOMAXPROCS) bucketd should run with, given
// its configuration, the environment and the current count: at least 2
// under --sync always with the embedded store, unless the environment sets
// GOMAXPROCS.
//
// Under --sync always, every changing take waits for a group's fdatasync.
// With one P (one CPU, or a container limited to one), the takes of the
// next group wait until Go's runtime notices the thread blocked in that
// syscall and hands its P on, and the goroutine back from it queues behind
// them before it can answer its group; with a second P both run at once,
// and the operating system shares the CPU between the two threads. On one
// pinned core this about doubled the takes a second. Under --sync interval
// a second P costs more than it gives: on one pinned core the p99 of HTTP
// takes rose from about 1-4 ms to 4-13 ms (README, CPUs).
func MinProcs(cfg Config, env []string, current int) int {
	if cfg.Store != "" || cfg.Sync != storage.SyncAlways || current >= 2 {
		return current
	}
	for _, kv := range env {
		if name, _, ok := strings.Cut(kv, "="); ok && name == "GOMAXPROCS" {
			return current
		}
	}
	return 2
}
