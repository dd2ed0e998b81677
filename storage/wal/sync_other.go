//go:build !linux

package wal

import "os"

// datasync flushes f's data to the disk; without fdatasync(2), fsync.
func datasync(f *os.File) error { return f.Sync() }
