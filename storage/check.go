package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// preflight checks the structure of the bbolt file at path (see
// verifyBolt) before bbolt opens it, under a shared lock so that a file in
// use by another process is reported as such rather than as damaged.
// Damage that bbolt recovers from (one damaged meta page) is logged.
func preflight(path string, timeout time.Duration, repair bool, log *slog.Logger) error {
	w, err := verifyLocked(path, timeout)
	switch {
	case errors.Is(err, ErrInUse):
		return fmt.Errorf("storage: %s is %w", path, ErrInUse)
	case errors.Is(err, errNotBolt):
		return fmt.Errorf("storage: %s is %w (%v)", path, ErrNotDatabase, err)
	case err != nil && w == nil:
		return fmt.Errorf("storage: open %s: %w", path, err)
	case err != nil && repair:
		log.Warn("storage: repair: bbolt's structure is damaged: rebuilding the file from the values that can be reached", "file", path, "err", err)
		if serr := salvageFile(path, timeout, log); serr != nil {
			return fmt.Errorf("storage: %s is %w: %v; and --repair cannot rebuild it: %v; restore a backup", path, ErrDamaged, err, serr)
		}
		return nil
	case err != nil:
		return fmt.Errorf("storage: %s is %w: %v", path, ErrDamaged, err)
	}
	for _, s := range w.warnings {
		log.Warn("storage: the data file is damaged, and bbolt recovers: "+s, "file", path)
	}
	return nil
}

// verifyLocked runs verifyBolt on path under a shared lock, waiting up to
// timeout for it; ErrInUse if another process holds the file.
func verifyLocked(path string, timeout time.Duration) (*boltWalk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := lockShared(f, timeout); err != nil {
		return nil, err
	}
	defer unlock(f)
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return verifyBolt(f, fi.Size())
}

// damage is what load found wrong in the values of a file: what to drop,
// and one line for each thing dropped.
type damage struct {
	pages, overrides [][]byte
	notes            []string
}

func (d *damage) empty() bool { return len(d.notes) == 0 }

// page records a damaged page (of the bbolt key id): an error, or with
// repair a page to drop. The keys that it seems to hold are named.
func (d *damage) page(repair bool, id, stored []byte, err error) error {
	msg := fmt.Sprintf("page %x: %v", id, err)
	if keys := keysIn(stored); len(keys) > 0 {
		msg += fmt.Sprintf("; the keys it seems to hold: %s", strings.Join(keys, ", "))
	}
	if !repair {
		return fmt.Errorf("%w: %s", ErrDamaged, msg)
	}
	d.pages = append(d.pages, slices.Clone(id))
	d.notes = append(d.notes, msg)
	return nil
}

// records records the unreadable records of a page whose checksum
// matches (bad names them): an error, or with repair keys to drop. Those
// read are kept, and the page is written again by the next checkpoint.
func (d *damage) records(repair bool, id []byte, bad []string) error {
	msg := fmt.Sprintf("page %x: its checksum matches, but it holds unreadable records: %s", id, strings.Join(bad, ", "))
	if !repair {
		return fmt.Errorf("%w: %s", ErrDamaged, msg)
	}
	d.notes = append(d.notes, msg)
	return nil
}

// override records a damaged override (of bbolt key id).
func (d *damage) override(repair bool, id []byte, err error) error {
	policy, key, _ := strings.Cut(string(id), "\x00")
	msg := fmt.Sprintf("override of key %q under policy %q: %v", key, policy, err)
	if !repair {
		return fmt.Errorf("%w: %s", ErrDamaged, msg)
	}
	d.overrides = append(d.overrides, slices.Clone(id))
	d.notes = append(d.notes, msg)
	return nil
}

// tally checks what was read against the meta digest.
func (d *damage) tally(repair bool, got, want digest) error {
	if !d.empty() { // what was dropped is not in got: the digest is rewritten
		return nil
	}
	var msg string
	switch {
	case got.pages != want.pages:
		msg = fmt.Sprintf("it holds %d pages, but its meta digest says %d, or they are not the pages last written (a page lost, or one of an older commit)", got.pages.n, want.pages.n)
	case got.overrides != want.overrides:
		msg = fmt.Sprintf("it holds %d overrides, but its meta digest says %d, or they are not the overrides last written (an override lost, or one of an older commit)", got.overrides.n, want.overrides.n)
	default:
		return nil
	}
	if !repair {
		return fmt.Errorf("%w: %s", ErrDamaged, msg)
	}
	d.notes = append(d.notes, msg+"; which ones cannot be named")
	return nil
}

// keysIn returns the keys that a damaged page's bytes seem to hold, as
// far as they can be read, 20 at most.
func keysIn(stored []byte) []string {
	if len(stored) < sealSize {
		return nil
	}
	var keys []string
	more := 0
	_ = decodePage(stored[:len(stored)-sealSize], func(k, _ []byte) error {
		if len(keys) < 20 {
			keys = append(keys, fmt.Sprintf("%q", k))
		} else {
			more++
		}
		return nil
	})
	if more > 0 {
		keys = append(keys, fmt.Sprintf("and %d more", more))
	}
	return keys
}

// repair drops what d names from the file, after copying the file aside,
// rewrites the digest, and logs each thing dropped. Every page is written
// again by the first checkpoint.
func (db *DB) repair(path string, d *damage) error {
	aside, err := copyAside(path)
	if err != nil {
		return fmt.Errorf("storage: repair %s: keep a copy of the damaged file: %w", path, err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		pages, overrides := tx.Bucket(pagesName), tx.Bucket(overridesName)
		for _, id := range d.pages {
			if err := pages.Delete(id); err != nil {
				return err
			}
		}
		for _, id := range d.overrides {
			if err := overrides.Delete(id); err != nil {
				return err
			}
		}
		return retally(tx)
	})
	if err != nil {
		return fmt.Errorf("storage: repair %s: %w", path, err)
	}
	for _, n := range d.notes {
		db.log.Warn("storage: repair: dropped "+n, "file", path)
	}
	for i := range db.table.shards {
		db.table.shards[i].dirty = 1<<pagesPerShard - 1
	}
	db.log.Warn("storage: repaired the data file: what was damaged is dropped, as logged above", "file", path,
		"dropped_pages", len(d.pages), "dropped_overrides", len(d.overrides), "damaged_copy", aside)
	return nil
}

// copyAside copies the file at path to path.damaged-<n>, the first n free.
func copyAside(path string) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	for n := 1; ; n++ {
		name := fmt.Sprintf("%s.damaged-%d", path, n)
		dst, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(dst, src); err != nil {
			dst.Close()
			return "", err
		}
		if err := dst.Sync(); err != nil {
			dst.Close()
			return "", err
		}
		return name, dst.Close()
	}
}

// retally writes the digest of the values tx holds, each of at least
// sealSize bytes.
func retally(tx *bolt.Tx) error {
	var dg digest
	for _, it := range []struct {
		name []byte
		t    *tally
	}{{pagesName, &dg.pages}, {overridesName, &dg.overrides}} {
		if err := tx.Bucket(it.name).ForEach(func(_, v []byte) error { it.t.add(v); return nil }); err != nil {
			return err
		}
	}
	return writeDigest(tx.Bucket(metaName), dg)
}

// salvageFile rebuilds the bbolt file at path from the values that a
// salvage walk reaches (see boltWalk.salvage): the file is copied aside,
// a new one is written beside it and renamed over it. Each part of the
// tree that could not be read is logged. The values are then checked by
// load, as any file's.
func salvageFile(path string, timeout time.Duration, log *slog.Logger) error {
	vals := map[string][][2][]byte{}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := lockShared(f, timeout); err != nil {
		f.Close()
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w := &boltWalk{f: f, size: fi.Size(), used: map[uint64]bool{0: true, 1: true}, salvage: func(b string, k, v []byte) {
		vals[b] = append(vals[b], [2][]byte{slices.Clone(k), slices.Clone(v)})
	}}
	err = w.readMeta()
	if err == nil {
		_, err = w.walk(w.meta.root, nil, nil, 0)
	}
	unlock(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("its root cannot be read: %w", err)
	}
	seen := map[string]bool{}
	for _, kv := range vals[string(metaName)] {
		seen[string(kv[0])] = true
	}
	if !seen[string(seedKey)] || !seen[string(formatKey)] {
		return errors.New("its meta values (seed, format) are lost")
	}
	aside, err := copyAside(path)
	if err != nil {
		return fmt.Errorf("keep a copy of the damaged file: %w", err)
	}
	tmp := path + ".repair"
	_ = os.Remove(tmp)
	bdb, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{metaName, pagesName, overridesName} {
			b, err := tx.CreateBucket(name)
			if err != nil {
				return err
			}
			for _, kv := range vals[string(name)] {
				if err := b.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	for _, l := range w.lost {
		log.Warn("storage: repair: dropped what bbolt cannot reach: "+l, "file", path)
	}
	log.Warn("storage: repair: rebuilt the data file from what could be read", "file", path,
		"pages", len(vals[string(pagesName)]), "overrides", len(vals[string(overridesName)]), "damaged_copy", aside)
	return nil
}
