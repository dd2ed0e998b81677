// Package storage owns all bucket state: a sharded in-memory table of the
// buckets that are not full, and its persistence in a bbolt file.
//
// Takes are answered from memory. Changed buckets are written to bbolt in
// one transaction per flush: every SyncInterval by default, or, with
// SyncAlways, before each changed take is answered, takes that arrive
// together sharing one commit. A bucket that has refilled to capacity is the
// same as no bucket, and is dropped from memory and disk.
//
// A DB is safe for concurrent use. Takes on one key are atomic; takes on
// different keys mostly lock different shards.
package storage

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/bucketd/bucketd/bucket"
)

// SyncMode says when changed buckets reach the disk.
type SyncMode int

const (
	// SyncInterval writes changed buckets once every SyncInterval; a take is
	// answered without waiting for the disk. A crash loses at most the last
	// interval. This is the zero value.
	SyncInterval SyncMode = iota
	// SyncAlways makes each changed take durable before it is answered;
	// concurrent takes share one commit.
	SyncAlways
)

// ParseSyncMode parses "interval" or "always".
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "interval":
		return SyncInterval, nil
	case "always":
		return SyncAlways, nil
	}
	return 0, fmt.Errorf("sync mode %q: want interval or always", s)
}

func (m SyncMode) String() string {
	if m == SyncAlways {
		return "always"
	}
	return "interval"
}

// Options configure a DB. The zero value is valid: the original service's
// limit of 5 tokens refilled at 1 every 3 s, SyncInterval every second.
type Options struct {
	// Default is the single limit of the default policy; zero means
	// capacity 5, rate 1/3s.
	Default bucket.Limit
	// Sync and SyncInterval (0 = 1s) say when changes reach the disk.
	Sync         SyncMode
	SyncInterval time.Duration
	// LockTimeout is how long Open waits for another process to release the
	// file; 0 means 1s.
	LockTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives warnings and background flush errors; nil discards.
	Logger *slog.Logger
}

// DefaultLimit is the original service's limit: 5 tokens, one every 3 s.
var DefaultLimit = bucket.Limit{Capacity: 5 * bucket.Token, Rate: bucket.Every(3 * time.Second)}

// Errors of Open.
var (
	// ErrInUse is returned when another process holds the data file.
	ErrInUse = errors.New("in use by another process")
	// ErrNotDatabase is returned when the data file is not a bbolt database
	// of bucketd.
	ErrNotDatabase = errors.New("not a bucketd database")
)

// The bbolt buckets: pages of bucket state by page id, overrides by policy
// NUL key, and the file's metadata.
var (
	pagesName     = []byte("pages")
	overridesName = []byte("overrides")
	metaName      = []byte("meta")
	seedKey       = []byte("seed")
	formatKey     = []byte("format")
)

// fileFormat is the layout of the file, stored in meta: pages of pageCount.
const fileFormat = 1

// DB is the bucket store. Open one with Open; Close it when done.
type DB struct {
	bolt   *bolt.DB
	table  *table
	now    func() time.Time
	log    *slog.Logger
	sync   SyncMode
	every  time.Duration
	closed atomic.Bool

	policies  atomic.Pointer[policyTable]
	interned  sync.Map // bucket.Limit -> []bucket.Limit of it; see intern
	internedN atomic.Int64
	keys      atomic.Int64 // entries in the table
	lastSave  atomic.Int64 // Unix ns of the last successful flush

	flushMu sync.Mutex // serializes flushes and FlushAll, so disk writes stay in order

	failFlush func() error // tests only: makes a flush's transaction fail
	arena     []byte       // the pages of the last flush, reused; guarded by flushMu
	writes    []pageWrite  // the same

	mu        sync.Mutex // guards pending and finalized
	pending   *flushWait // the flush that will carry changes made now
	finalized bool       // Close has made its last flush
	finalErr  error      // that flush's error

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// flushWait is a flush that callers wait for.
type flushWait struct {
	done  chan struct{}
	err   error
	sweep bool // guarded by DB.mu
}

// Open opens (creating if needed) the data file at path and loads its
// buckets, refilled for the time the file was closed.
func Open(path string, opts Options) (*DB, error) {
	if opts.Default == (bucket.Limit{}) {
		opts.Default = DefaultLimit
	}
	if err := opts.Default.Validate(); err != nil {
		return nil, fmt.Errorf("storage: default limit: %w", err)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bdb, seed, err := openBolt(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	db := &DB{
		bolt:  bdb,
		table: newTable(seed),
		now:   opts.Now,
		log:   opts.Logger,
		sync:  opts.Sync,
		every: opts.SyncInterval,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	db.policies.Store(newPolicyTable(opts.Default))
	if err := db.load(); err != nil {
		bdb.Close()
		return nil, err
	}
	db.lastSave.Store(db.now().UnixNano())
	go db.flusher()
	return db, nil
}

func openBolt(path string, timeout time.Duration) (*bolt.DB, uint64, error) {
	name := filepath.Base(path)
	if dir := filepath.Dir(path); dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			return nil, 0, fmt.Errorf("storage: data directory: %w", err)
		} else if !fi.IsDir() {
			return nil, 0, fmt.Errorf("storage: data directory %s is not a directory", dir)
		}
	}
	// The freelist is rebuilt at open rather than written at every commit:
	// commits are what --sync always waits for.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, 0, fmt.Errorf("storage: %s is %w", name, ErrInUse)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrInvalidMapping):
		return nil, 0, fmt.Errorf("storage: %s is %w (%v)", name, ErrNotDatabase, err)
	case err != nil:
		if strings.Contains(err.Error(), "file size too small") {
			return nil, 0, fmt.Errorf("storage: %s is %w (%v)", name, ErrNotDatabase, err)
		}
		return nil, 0, fmt.Errorf("storage: open %s: %w", path, err)
	}
	var seed uint64
	err = bdb.Update(func(tx *bolt.Tx) (err error) {
		seed, err = prepare(tx)
		return err
	})
	if err != nil {
		bdb.Close()
		if errors.Is(err, ErrNotDatabase) {
			return nil, 0, fmt.Errorf("storage: %s is %w", name, err)
		}
		return nil, 0, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return bdb, seed, nil
}

// prepare creates bucketd's bbolt buckets in a new file, or checks them in
// an old one, and returns the file's hash seed.
func prepare(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(metaName)
	if meta == nil {
		other := false
		if err := tx.ForEach(func([]byte, *bolt.Bucket) error { other = true; return nil }); err != nil {
			return 0, err
		}
		if other {
			return 0, fmt.Errorf("%w (a bbolt file of some other program)", ErrNotDatabase)
		}
		var err error
		if meta, err = tx.CreateBucket(metaName); err != nil {
			return 0, err
		}
		var seed [8]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return 0, err
		}
		if err := meta.Put(seedKey, seed[:]); err != nil {
			return 0, err
		}
		if err := meta.Put(formatKey, []byte{fileFormat}); err != nil {
			return 0, err
		}
	}
	if f := meta.Get(formatKey); len(f) != 1 || f[0] != fileFormat {
		return 0, fmt.Errorf("%w (unknown format %x)", ErrNotDatabase, f)
	}
	seed := meta.Get(seedKey)
	if len(seed) != 8 {
		return 0, fmt.Errorf("%w (bad seed)", ErrNotDatabase)
	}
	for _, name := range [][]byte{pagesName, overridesName} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			if errors.Is(err, bolterrors.ErrIncompatibleValue) {
				return 0, fmt.Errorf("%w (%v)", ErrNotDatabase, err)
			}
			return 0, err
		}
	}
	return binary.LittleEndian.Uint64(seed), nil
}

// load reads every stored bucket into the table. Buckets that refilled
// while the file was closed are left out, and their pages rewritten at the
// first flush.
func (db *DB) load() error {
	now := db.now()
	refilled, bad := 0, 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(pagesName).ForEach(func(id, page []byte) error {
			err := decodePage(page, func(k, rec []byte) error {
				e, err := decode(rec)
				if err != nil {
					bad++
					db.log.Warn("storage: skipping unreadable bucket", "key", string(k), "err", err)
					return nil
				}
				e.key = string(k)
				s, pg := db.table.locate(e.key)
				for _, b := range slices.Clone(e.subs) {
					if b.isFull(now) {
						e.remove(b.policy.Name)
						s.markLocked(pg)
					} else {
						b.fullAt = now.UnixNano() + int64(b.untilFull(now))
					}
				}
				if len(e.subs) == 0 {
					refilled++
					return nil
				}
				if s.m[pg][e.key] == nil {
					db.keys.Add(1)
				}
				s.m[pg][e.key] = e
				return nil
			})
			if err != nil {
				bad++
				db.log.Warn("storage: skipping the rest of an unreadable page", "page", fmt.Sprintf("%x", id), "err", err)
			}
			return nil
		})
	})
	if err == nil {
		err = db.bolt.View(db.loadOverrides)
	}
	if err != nil {
		return fmt.Errorf("storage: load: %w", err)
	}
	db.log.Debug("storage: loaded", "buckets", db.keys.Load(), "refilled", refilled, "unreadable", bad)
	return nil
}

// sweepEvery is about how often the flusher drops the buckets that have
// refilled.
const sweepEvery = 5 * time.Second

// flusher writes changed buckets every interval, and whenever a caller
// waits for a flush; it makes the final flush when the DB closes.
func (db *DB) flusher() {
	defer close(db.done)
	tick := time.NewTicker(db.every)
	defer tick.Stop()
	// The sweep visits every bucket, so it runs only every sweepEvery:
	// until then a full bucket waits in memory, answering as full.
	ticksPerSweep := max(1, int(sweepEvery/db.every))
	ticks := 0
	sweep := false // whether this flush also drops the refilled buckets
	for {
		select {
		case <-db.stop:
			return
		case <-tick.C:
			ticks++
			sweep = ticks%ticksPerSweep == 0
		case <-db.kick:
		}
		db.mu.Lock()
		w := db.pending
		db.pending = nil
		if w != nil && w.sweep {
			sweep = true
		}
		db.mu.Unlock()
		err := db.flush(sweep)
		sweep = false
		if w != nil {
			w.err = err
			close(w.done)
		} else if err != nil {
			db.log.Error("storage: flush failed; will retry", "err", err)
		}
	}
}

// waitFlush waits until a flush that starts after this call has written
// everything changed before it. With sweep, that flush also drops the
// buckets that have refilled; takes leave that to the interval, since it
// visits every bucket.
func (db *DB) waitFlush(sweep bool) error {
	db.mu.Lock()
	if db.finalized {
		err := db.finalErr
		db.mu.Unlock()
		return err
	}
	w := db.pending
	if w == nil {
		w = &flushWait{done: make(chan struct{})}
		db.pending = w
	}
	w.sweep = w.sweep || sweep
	db.mu.Unlock()
	select {
	case db.kick <- struct{}{}:
	default:
	}
	<-w.done
	return w.err
}

// pageWrite is one page to write: arena[off:end], or a delete if empty.
type pageWrite struct {
	id       uint16
	off, end int
}

// pageKey is a page's bbolt key: its id, big-endian, so that a flush puts
// pages in key order.
func pageKey(id uint16) []byte { return []byte{byte(id >> 8), byte(id)} }

// flush writes every changed page in one transaction, after dropping the
// buckets that have refilled if sweep is set. On failure the pages stay
// dirty, to be written by the next flush.
func (db *DB) flush(sweep bool) error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	now := db.now()
	writes := db.writes[:0]
	arena := db.arena[:0]
	defer func() { // keep the buffers for the next flush, unless one was huge
		if cap(arena) <= 64<<20 {
			db.arena, db.writes = arena[:0], writes[:0]
		}
	}()
	for i := range db.table.shards {
		s := &db.table.shards[i]
		s.mu.Lock()
		dropped := 0
		if sweep {
			dropped = s.sweepLocked(now)
		}
		for pg := range pagesPerShard {
			if s.dirty&(1<<pg) == 0 {
				continue
			}
			off := len(arena)
			arena = s.appendPage(arena, pg)
			writes = append(writes, pageWrite{id: uint16(i*pagesPerShard + pg), off: off, end: len(arena)})
		}
		s.dirty = 0
		s.mu.Unlock()
		db.keys.Add(-int64(dropped))
	}
	if len(writes) == 0 {
		db.lastSave.Store(now.UnixNano())
		return nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if db.failFlush != nil {
			if err := db.failFlush(); err != nil {
				return err
			}
		}
		b := tx.Bucket(pagesName)
		for _, w := range writes {
			var err error
			if w.off == w.end {
				err = b.Delete(pageKey(w.id))
			} else {
				err = b.Put(pageKey(w.id), arena[w.off:w.end])
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, w := range writes { // keep them for the next flush
			s := &db.table.shards[int(w.id)/pagesPerShard]
			s.mu.Lock()
			s.markLocked(int(w.id) % pagesPerShard)
			s.mu.Unlock()
		}
		return fmt.Errorf("storage: flush: %w", err)
	}
	db.lastSave.Store(now.UnixNano())
	return nil
}

// Close stops the background flusher, writes every change, and closes the
// file. Takes after Close fail with bucket.ErrClosed. Close is idempotent.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		close(db.stop)
		<-db.done
		db.mu.Lock()
		w := db.pending
		db.pending = nil
		err := db.flush(true)
		db.finalized, db.finalErr = true, err
		db.mu.Unlock()
		if w != nil {
			w.err = err
			close(w.done)
		}
		if cerr := db.bolt.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("storage: close: %w", cerr)
		}
		db.closeErr = err
	})
	return db.closeErr
}

// Save writes every change to disk now and waits for it.
func (db *DB) Save() error {
	if db.closed.Load() {
		return bucket.ErrClosed
	}
	return db.waitFlush(true)
}

// LastSave is when changes last reached the disk.
func (db *DB) LastSave() time.Time { return time.Unix(0, db.lastSave.Load()) }

// SyncMode is the mode the DB was opened with.
func (db *DB) SyncMode() SyncMode { return db.sync }

// Path is the data file's path.
func (db *DB) Path() string { return db.bolt.Path() }
