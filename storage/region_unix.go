//go:build unix

package storage

import "syscall"

// allocRegion returns n zeroed bytes outside the Go heap (an anonymous
// mapping, as github.com/VictoriaMetrics/fastcache allocates its chunks), so
// that the table's arrays neither count toward the garbage collector's heap
// target nor are scanned by it, and pages never written cost no memory. It
// must hold no Go pointers; freeRegion gives it back.
func allocRegion(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		panic("storage: out of memory: mmap " + err.Error())
	}
	return b
}

// freeRegion gives back a region of allocRegion; b must not be used after.
func freeRegion(b []byte) {
	if len(b) == 0 {
		return
	}
	if err := syscall.Munmap(b); err != nil {
		panic("storage: munmap: " + err.Error())
	}
}
