package storage

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// openBolt checks the data file at path (verify.go), with repair rebuilds
// what is damaged, then opens it with bbolt and prepares it (prepare): it
// returns the DB, the file's hash seed and the format it was migrated from
// (0 if none).
func openBolt(path string, timeout time.Duration, repair bool, log *slog.Logger) (*bolt.DB, uint64, int, error) {
	name := path // as the operator gave it
	if dir := filepath.Dir(path); dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			return nil, 0, 0, fmt.Errorf("storage: data directory: %w", err)
		} else if !fi.IsDir() {
			return nil, 0, 0, fmt.Errorf("storage: data directory %s is not a directory", dir)
		}
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		return nil, 0, 0, fmt.Errorf("storage: %s is %w: it is empty (0 bytes), as a start that failed on a full disk leaves it; remove it to start with no buckets", name, ErrNotDatabase)
	} else if err == nil && fi.Mode().IsRegular() {
		// Check bbolt's structure before bbolt maps and walks it.
		if err := preflight(path, timeout, repair, log); err != nil {
			return nil, 0, 0, err
		}
	}
	// The freelist is rebuilt at open rather than written at every commit:
	// commits are what --sync always waits for.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, 0, 0, fmt.Errorf("storage: %s is %w", name, ErrInUse)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrInvalidMapping):
		return nil, 0, 0, fmt.Errorf("storage: %s is %w (%v)", name, ErrNotDatabase, err)
	case err != nil:
		if strings.Contains(err.Error(), "file size too small") {
			return nil, 0, 0, fmt.Errorf("storage: %s is %w (%v)", name, ErrNotDatabase, err)
		}
		return nil, 0, 0, fmt.Errorf("storage: open %s: %w", path, err)
	}
	var seed uint64
	var migrated int
	err = bdb.Update(func(tx *bolt.Tx) (err error) {
		seed, migrated, err = prepare(tx)
		return err
	})
	if err != nil {
		bdb.Close()
		if errors.Is(err, ErrNotDatabase) || errors.Is(err, ErrNewerFormat) || errors.Is(err, ErrDamaged) {
			return nil, 0, 0, fmt.Errorf("storage: %s is %w", name, err)
		}
		return nil, 0, 0, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return bdb, seed, migrated, nil
}

// prepare creates bucketd's bbolt buckets in a new file, or checks them in
// an old one, and returns the file's hash seed; migrated is the format the
// file was migrated from (formatPages or formatLog), or 0.
func prepare(tx *bolt.Tx) (seed uint64, migrated int, err error) {
	meta := tx.Bucket(metaName)
	fresh := false
	if meta == nil {
		other := false
		if err := tx.ForEach(func([]byte, *bolt.Bucket) error { other = true; return nil }); err != nil {
			return 0, 0, err
		}
		if other {
			return 0, 0, fmt.Errorf("%w (a bbolt file of some other program)", ErrNotDatabase)
		}
		if meta, err = tx.CreateBucket(metaName); err != nil {
			return 0, 0, err
		}
		var seed [8]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return 0, 0, err
		}
		if err := meta.Put(seedKey, seed[:]); err != nil {
			return 0, 0, err
		}
		if err := meta.Put(formatKey, []byte{fileFormat}); err != nil {
			return 0, 0, err
		}
		fresh = true
	}
	// Check everything before writing anything: a refused file is never
	// modified.
	f := meta.Get(formatKey)
	switch {
	case len(f) == 1 && f[0] > fileFormat:
		return 0, 0, fmt.Errorf("%w (format %d; this bucketd reads formats %d to %d): upgrade bucketd", ErrNewerFormat, f[0], formatPages, fileFormat)
	case len(f) != 1 || f[0] < formatPages:
		return 0, 0, fmt.Errorf("%w (unknown format %x)", ErrNotDatabase, f)
	case f[0] < fileFormat && meta.Get(digestKey) != nil:
		return 0, 0, fmt.Errorf("%w: its meta says format %d, but it has the digest of format %d", ErrDamaged, f[0], fileFormat)
	}
	sb := meta.Get(seedKey)
	if len(sb) != 8 {
		return 0, 0, fmt.Errorf("%w (bad seed)", ErrNotDatabase)
	}
	seed = binary.LittleEndian.Uint64(sb)
	if f[0] == fileFormat && !fresh {
		// A file of this format has every bucket: one missing was lost.
		for _, name := range [][]byte{pagesName, overridesName} {
			if tx.Bucket(name) == nil {
				return 0, 0, fmt.Errorf("%w: its bbolt bucket %q is missing", ErrDamaged, name)
			}
		}
		return seed, 0, nil
	}
	for _, name := range [][]byte{pagesName, overridesName} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			if errors.Is(err, bolterrors.ErrIncompatibleValue) {
				return 0, 0, fmt.Errorf("%w (%v)", ErrNotDatabase, err)
			}
			return 0, 0, err
		}
	}
	if !fresh {
		migrated = int(f[0])
		if err := meta.Put(formatKey, []byte{fileFormat}); err != nil {
			return 0, 0, err
		}
	}
	var d digest
	for _, it := range []struct {
		name []byte
		t    *tally
	}{{pagesName, &d.pages}, {overridesName, &d.overrides}} {
		if err := sealAll(tx.Bucket(it.name), it.t); err != nil {
			return 0, 0, err
		}
	}
	if err := writeDigest(meta, d); err != nil {
		return 0, 0, err
	}
	return seed, migrated, nil
}

// sealAll seals every value of b, of a file of format 1 or 2, tallying
// them in t.
func sealAll(b *bolt.Bucket, t *tally) error {
	var keys, vals [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			return fmt.Errorf("%w (a nested bucket %q among the values)", ErrNotDatabase, k)
		}
		keys, vals = append(keys, slices.Clone(k)), append(vals, seal(k, v))
		return nil
	}); err != nil {
		return err
	}
	for i, k := range keys {
		if err := b.Put(k, vals[i]); err != nil {
			return err
		}
		t.add(vals[i])
	}
	return nil
}
