package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/storage/wal"
)

// SyncMode says when changed buckets reach the disk.
type SyncMode int

const (
	// SyncInterval writes the log of changes out every 100ms (or every
	// SyncInterval, if shorter) and syncs it every SyncInterval; a take is
	// answered without waiting for the disk. A crash of the process loses
	// at most what was not yet written out, a crash of the machine at most
	// the last interval (and the time its sync takes). This is the zero
	// value.
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

// Options configure a DB. The zero value is valid: SyncInterval every
// second, the system clock, logs discarded.
type Options struct {
	// Sync and SyncInterval (0 = 1s) say when changes reach the disk.
	Sync         SyncMode
	SyncInterval time.Duration
	// LockTimeout is how long Open waits for another process to release the
	// file; 0 means 1s.
	LockTimeout time.Duration
	// Clock is the time source; nil means SystemClock().
	Clock Clock
	// Logger receives warnings and background flush errors; nil discards.
	Logger *slog.Logger
	// MaxKeys bounds the keys held in memory; 0 means no bound. At the
	// bound, a new key evicts the key closest to full (of a sample), in
	// the new key's shard: each of the 256 shards holds at most
	// ceil(MaxKeys/256) keys, so the store holds at most MaxKeys rounded
	// up to a multiple of 256, and may evict a little before MaxKeys when
	// one shard fills first.
	MaxKeys int
	// MaxLogBytes caps the write-ahead log: a checkpoint is due when the
	// log outgrows the live state or this cap; 0 means 256 MiB.
	MaxLogBytes int64

	logFile func(path string) (wal.File, error) // see DB.logFile; set by tests
	// Repair opens a damaged data file by dropping what is damaged: the
	// pages and overrides whose checksum does not match, or, when bbolt's
	// own structure is damaged, every page it cannot reach. The file is
	// first copied to <file>.damaged-<n>, and every page, key and
	// override dropped is logged at WARN. Damage to the file's meta values
	// (seed, clock, checkpoint) is not repaired. Without Repair, Open
	// refuses a damaged file with an error wrapping ErrDamaged.
	Repair bool
}

// defaultMaxLogBytes is the cap of the log when Options.MaxLogBytes is 0.
const defaultMaxLogBytes = 256 << 20

// logPreallocate is how far ahead of its records, in bytes, the log writes
// zeros under SyncAlways: 1 MiB, written once per MiB of records.
const logPreallocate = 1 << 20

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
	// clockKey holds the offset from the timeline of the pages' instants
	// to wall time, as of the flush that wrote it: int64 ns, little-endian.
	clockKey = []byte("clock")
	// checkpointKey holds the first sequence number of the write-ahead log
	// that the pages do not hold: uint64, little-endian.
	checkpointKey = []byte("checkpoint")
)

// The layouts of the file, stored in meta. Format 1 is pages of pageCount
// alone, written whole at every flush. Format 2 is the same pages as a
// checkpoint, with a write-ahead log beside the file (the directory
// <file>.wal) that holds every change since the checkpoint's sequence
// number (meta "checkpoint"). A file of format 1 is migrated on open; a
// file of a format this code does not know is refused and never written.
//
// Format 3 is format 2 with every page and override sealed by a CRC-32C
// and a meta digest (see checksums.go). A file of format 2 is migrated on
// open: its values are sealed in place.
const (
	formatPages = 1
	formatLog   = 2
	fileFormat  = 3
)

// ErrNewerFormat is returned by Open for a data file written by a newer
// bucketd, in a format this one cannot read. The file is not modified.
var ErrNewerFormat = errors.New("written by a newer bucketd")

// DB is the embedded engine: a Store in memory, persisted in bbolt. Open
// one with Open; Close it when done.
//
// Takes are answered from memory. Changed buckets are written to bbolt in
// one transaction per flush: every SyncInterval by default, or, with
// SyncAlways, before each changing take is answered, takes that arrive
// together sharing one commit. A bucket that has refilled to capacity is the
// same as no bucket, and is dropped from memory and disk by a sweep.
//
// Instants within a run are on one timeline: the wall time at Open plus the
// monotonic time since (see now), so that a wall-clock step changes nothing.
// The offset from that timeline to wall time is stored with every flush,
// and Open moves the stored instants onto its own timeline with it.
type DB struct {
	bolt      *bolt.DB
	disk      disk // where flushes go: bolt
	table     *table
	clock     Clock
	epochWall int64         // wall time at Open, Unix ns
	epochMono time.Duration // the clock's Mono at Open
	log       *slog.Logger
	sync      SyncMode
	every     time.Duration
	maxLog    int64
	// maxPerShard is each shard's share of Options.MaxKeys; 0 for none.
	maxPerShard int
	evicted     atomic.Uint64
	closed      atomic.Bool
	stats       counters // for Stats

	wal        *wal.Log
	logFile    func(path string) (wal.File, error) // how the log opens its files; nil: the OS's. Tests make them fail
	walDir     string
	checkpoint uint64  // the log's first seq the pages do not hold, as loaded; guarded by flushMu after Open
	pageBytes  []int32 // each page's size in the file; guarded by flushMu
	// pagesOffset is the offset to wall time of the instants in the
	// file's pages, as loaded or last written; guarded by flushMu.
	pagesOffset int64
	batchBytes  int          // about the most bytes of pages per checkpoint transaction (checkpointBatch; tests lower it)
	liveBytes   atomic.Int64 // the sum of pageBytes: the size of the live state on disk
	// pagedBuckets is the number of buckets in memory when the pages were
	// last loaded or all written: liveBytes holds that many (see liveState).
	pagedBuckets atomic.Int64

	lastSave atomic.Int64          // wall Unix ns of the last successful flush
	health   atomic.Pointer[error] // the last checkpoint's failure; nil when it succeeded
	logErr   atomic.Pointer[error] // the last write of the log's failure; nil when it succeeded

	flushMu sync.Mutex            // serializes flushes and override writes, so disk writes stay in order
	arena   []byte                // the pages of the last flush, reused; guarded by flushMu
	writes  []pageWrite           // the same
	pageBuf [pagesPerShard][]byte // one shard's pages being encoded, reused; guarded by flushMu

	mu        sync.Mutex // guards pending, finalized and finalErr
	pending   *flushWait // the flush that will carry changes made now
	finalized bool       // Close has made its last flush
	finalErr  error      // that flush's error

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// disk is what a flush writes through: the bbolt file. Tests wrap it to
// make writes fail.
type disk interface {
	Update(func(*bolt.Tx) error) error
}

// Open opens (creating if needed) the data file at path and loads its
// buckets, refilled for the time the file was closed. An existing file of 0
// bytes is refused: it is what a start that failed on a full disk leaves,
// or a file truncated by accident, not a database.
func Open(path string, opts Options) (*DB, error) {
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = defaultMaxLogBytes
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bdb, seed, migrated, err := openBolt(path, opts.LockTimeout, opts.Repair, opts.Logger)
	if err != nil {
		return nil, err
	}
	db := &DB{
		bolt:        bdb,
		disk:        bdb,
		table:       newTable(seed),
		clock:       opts.Clock,
		epochWall:   opts.Clock.Wall().UnixNano(),
		epochMono:   opts.Clock.Mono(),
		log:         opts.Logger,
		sync:        opts.Sync,
		every:       opts.SyncInterval,
		maxLog:      opts.MaxLogBytes,
		maxPerShard: (max(opts.MaxKeys, 0) + shardCount - 1) / shardCount,
		walDir:      path + ".wal",
		logFile:     opts.logFile,
		batchBytes:  checkpointBatch,
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	switch migrated {
	case formatPages:
		db.log.Info("storage: migrated the data file from format 1 (pages) to format 3 (pages sealed by checksums, and a write-ahead log)",
			"file", path, "wal", db.walDir)
	case formatLog:
		db.log.Info("storage: migrated the data file from format 2 to format 3 (every page and override sealed by a checksum)",
			"file", path)
	}
	if err := db.load(path, opts.Repair); err != nil {
		bdb.Close()
		return nil, err
	}
	db.pagedBuckets.Store(int64(db.table.buckets()))
	if err := db.openLog(); err != nil {
		bdb.Close()
		return nil, err
	}
	db.lastSave.Store(db.clock.Wall().UnixNano())
	go db.flusher()
	return db, nil
}

// openLog replays the write-ahead log from the checkpoint's sequence number
// into the table, then opens it for appending.
func (db *DB) openLog() error {
	next := db.checkpoint
	if next == 0 {
		next = 1
	}
	if _, err := os.Stat(db.walDir); err == nil {
		n := 0
		last, err := wal.Replay(db.walDir, next, func(_ uint64, p []byte) error {
			n++
			return db.replayRecord(p)
		}, db.log)
		if err != nil {
			return fmt.Errorf("storage: replay %s: %w", db.walDir, err)
		}
		db.log.Debug("storage: replayed the write-ahead log", "records", n, "from", next, "last", last)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("storage: write-ahead log: %w", err)
	} else if db.checkpoint > 1 {
		db.log.Warn("storage: no write-ahead log beside the data file: starting from its checkpoint (a backup copy, or a log removed by hand)",
			"wal", db.walDir)
	}
	if err := os.MkdirAll(db.walDir, 0o700); err != nil {
		return fmt.Errorf("storage: write-ahead log: %w", err)
	}
	opts := wal.Options{NextSeq: next, Logger: db.log, OpenFile: db.logFile}
	if db.sync == SyncAlways {
		// Each group's fdatasync then commits no file length: about twice
		// the groups a second on ext4 (see wal.Options.Preallocate).
		opts.Preallocate = logPreallocate
	}
	l, err := wal.Open(db.walDir, opts)
	if err != nil {
		return fmt.Errorf("storage: open %s: %w", db.walDir, err)
	}
	db.wal = l
	return nil
}

// now returns the current instant on the DB's timeline, in ns: the wall
// time at Open plus the monotonic time elapsed since.
func (db *DB) now() int64 {
	return db.epochWall + int64(db.clock.Mono()-db.epochMono)
}

// nowOffset returns now() and wallOffset() at that instant, from one
// reading of a clock that reads both at once (the system clock's time.Now).
func (db *DB) nowOffset() (int64, int64) {
	if c, ok := db.clock.(wallMonoClock); ok {
		w, m := c.wallMono()
		t := db.epochWall + int64(m-db.epochMono)
		return t, w - t
	}
	t := db.now()
	return t, db.clock.Wall().UnixNano() - t
}

// wallOffset returns the offset from the timeline to wall time now.
func (db *DB) wallOffset() int64 {
	return db.clock.Wall().UnixNano() - db.now()
}

// wallAt returns the wall time of the instant t.
func (db *DB) wallAt(t int64) time.Time { return time.Unix(0, t+db.wallOffset()) }

// load reads every stored bucket into the table, moving its instants onto
// this run's timeline with the offset stored by the last flush. Buckets that
// refilled while the file was closed are left out. When the offset is not
// zero every page is rewritten by the first flush, so that the file never
// holds instants of two timelines.
//
// Every page and override is checked against its checksum, and all of
// them against the meta digest: damage is an error wrapping ErrDamaged,
// or, with repair, is dropped from the file (copied aside first), each
// thing dropped logged.
func (db *DB) load(path string, repair bool) error {
	now := db.now()
	refilled, loaded := 0, 0
	var shift int64
	var dmg damage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaName)
		want, err := readDigest(meta)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDamaged, err) // not repaired: the seed, clock and checkpoint are not known
		}
		if v := meta.Get(clockKey); len(v) == 8 {
			shift = int64(binary.LittleEndian.Uint64(v))
		}
		if v := meta.Get(checkpointKey); len(v) == 8 {
			db.checkpoint = binary.LittleEndian.Uint64(v)
		}
		db.pageBytes = make([]int32, pageCount)
		var got digest
		err = tx.Bucket(pagesName).ForEach(func(id, stored []byte) error {
			page, err := unseal(id, stored)
			if err == nil && (len(id) != 2 || int(binary.BigEndian.Uint16(id)) >= pageCount) {
				err = errors.New("not a page id")
			}
			if err != nil {
				return dmg.page(repair, id, stored, err)
			}
			got.pages.add(stored)
			db.pageBytes[binary.BigEndian.Uint16(id)] = int32(len(stored))
			db.liveBytes.Add(int64(len(stored)))
			var bad []string
			err = decodePage(page, func(k, rec []byte) error {
				e, err := decode(rec)
				if err != nil {
					bad = append(bad, fmt.Sprintf("key %q (%v)", k, err))
					return nil
				}
				e.key = string(k)
				s, _, h := db.table.locate(e.key)
				kept := false
				for _, b := range e.subs {
					b.shift(shift)
					kept = db.restore(s, h, e.key, b, now) || kept
				}
				if !kept {
					refilled++
				} else {
					loaded++
				}
				return nil
			})
			if err != nil {
				bad = append(bad, fmt.Sprintf("the rest of the page (%v)", err))
			}
			if len(bad) > 0 { // sound, but unreadable: written so, by a bug
				return dmg.records(repair, id, bad)
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(overridesName).ForEach(func(id, stored []byte) error {
			v, err := unseal(id, stored)
			if err == nil {
				if e, derr := decode(v); derr != nil || len(e.subs) != 1 || bytes.IndexByte(id, 0) < 0 {
					err = fmt.Errorf("sealed, but unreadable: %v", cmp.Or(derr, errors.New("not an override")))
				}
			}
			if err != nil {
				return dmg.override(repair, id, err)
			}
			got.overrides.add(stored)
			return nil
		})
		if err != nil {
			return err
		}
		return dmg.tally(repair, got, want)
	})
	if err != nil {
		return fmt.Errorf("storage: %s is %w", path, err)
	}
	db.pagesOffset = shift
	if shift != 0 {
		for i := range db.table.shards {
			db.table.shards[i].dirty = 1<<pagesPerShard - 1
		}
	}
	if !dmg.empty() {
		if err := db.repair(path, &dmg); err != nil {
			return err
		}
	}
	db.log.Debug("storage: loaded", "keys", loaded, "refilled", refilled, "unreadable", len(dmg.notes), "clock_shift", time.Duration(shift))
	return nil
}

// shift moves b's instants by d ns.
func (b *sub) shift(d int64) {
	if d == 0 {
		return
	}
	b.updated += d
	for i := range b.states {
		b.states[i].At += d
	}
}

// SyncMode is the mode the DB was opened with.
func (db *DB) SyncMode() SyncMode { return db.sync }

// Path is the data file's path.
func (db *DB) Path() string { return db.bolt.Path() }

// liveState returns about how many bytes the pages of the buckets in
// memory now take: the pages' size when last written, scaled by how the
// number of buckets has changed since. A checkpoint is due when the log
// outgrows it: while new keys pour in, the live state grows with the log,
// and measured as of the last checkpoint it would call for a checkpoint
// ever sooner after the last (in a fill of a million keys, 3 checkpoints
// of the run's 8.5 s on one core took 1.8 s).
func (db *DB) liveState() int64 {
	live, paged := db.liveBytes.Load(), db.pagedBuckets.Load()
	if paged <= 0 {
		return live
	}
	return int64(float64(live) * float64(db.table.buckets()) / float64(paged))
}
