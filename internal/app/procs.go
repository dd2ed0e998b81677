package app

import (
	"strings"
)

// MinProcs returns how many Ps (GOMAXPROCS) bucketd should run with, given
// its configuration, the environment and the current count: at least 2
// with the embedded store, unless the environment sets GOMAXPROCS.
//
// The embedded store blocks a thread in fdatasync: in each group commit of
// the log under --sync always, and in the commits of a checkpoint. With one
// P (one CPU, or a container limited to one), the takes waiting for that P
// wait until the runtime notices the blocked thread and hands its P on,
// which takes up to 10 ms when the runtime has been idle, and the
// goroutine back from fdatasync queues behind the next group's requests.
// With a second P they run at once, and the operating system shares the
// CPU between the two threads. On one pinned core this cut the p99 of
// takes during back-to-back checkpoints about tenfold and raised the takes
// a second under --sync always, at no measurable cost to pipelined takes
// (README, Performance).
func MinProcs(cfg Config, env []string, current int) int {
	if cfg.Store != "" || current >= 2 {
		return current
	}
	for _, kv := range env {
		if name, _, ok := strings.Cut(kv, "="); ok && name == "GOMAXPROCS" {
			return current
		}
	}
	return 2
}
