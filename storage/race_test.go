//go:build race

package storage_test

// raceEnabled reports whether the race detector is on. It makes opening a
// DB several times slower: the crash tests then try fewer crash points.
const raceEnabled = true
