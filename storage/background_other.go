//go:build !linux

package storage

// lowerPriority does nothing and returns 0: only Linux sets the priority
// of one thread.
func lowerPriority() int { return 0 }
