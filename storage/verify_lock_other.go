//go:build !unix

package storage

import (
	"os"
	"time"
)

// lockShared does nothing here: bbolt's own open takes its lock.
func lockShared(*os.File, time.Duration) error { return nil }

func unlock(*os.File) {}
