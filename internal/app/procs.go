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
// With one P (one CPU, or a container limited to one), the goroutine that
// comes back from that syscall finds the P busy with the requests of the
// next group and waits in the run queue behind them before it can answer
// its group; with a second P it runs at once, and the operating system
// shares the CPU between the two. On one pinned core this answered about
// 1.3 to 1.9 times the takes a second (README, Performance).
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
