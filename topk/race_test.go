//go:build race

package topk

// raceEnabled is set under -race, which makes each Add some ten times
// slower: the largest streams are cut there.
const raceEnabled = true
