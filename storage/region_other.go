//go:build !unix

package storage

// allocRegion returns n zeroed bytes; on this system, from the Go heap.
func allocRegion(n int) []byte { return make([]byte, n) }

// freeRegion leaves b to the garbage collector.
func freeRegion([]byte) {}
