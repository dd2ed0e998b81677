//go:build race

package bucket_test

// raceEnabled reports whether the race detector is on. It makes a take four
// to five times slower, too slow for the billion takes of TestTakeExactBillion.
const raceEnabled = true
