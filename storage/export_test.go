package storage

// What the tests of package storage_test see of the engine's insides. They
// live there, not here, because they use storetest.Clock, and package
// storetest imports storage.

import (
	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage/wal"
)

// Disk is what a flush writes through (db.disk), for tests to wrap.
type Disk = disk

// SetDisk makes db's flushes and override writes go through d, and returns
// the disk it replaces. It is safe while db runs: it waits for a flush in
// progress.
func SetDisk(db *DB, d Disk) Disk {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	old := db.disk
	db.disk = d
	return old
}

// Bolt returns db's bbolt file, to read what was committed.
func Bolt(db *DB) *bolt.DB { return db.bolt }

// The names of the file's bbolt buckets and keys.
var (
	PagesName     = pagesName
	OverridesName = overridesName
	MetaName      = metaName
	ClockKey      = clockKey
	SeedKey       = seedKey
	FormatKey     = formatKey
)

const (
	RecordVersion = recordVersion
	PagesPerShard = pagesPerShard
)

// PageKey is the bbolt key of page id.
func PageKey(id uint16) []byte { return pageKey(id) }

// PageOf returns the id of the page that holds key in db's file.
func PageOf(db *DB, key string) uint16 {
	s, pg, _ := db.table.locate(key)
	for i := range db.table.shards {
		if &db.table.shards[i] == s {
			return uint16(i*pagesPerShard + pg)
		}
	}
	panic("storage: a key outside the table")
}

// LockShard holds the lock of key's shard until the returned function is
// called.
func LockShard(db *DB, key string) (unlock func()) {
	s, _, _ := db.table.locate(key)
	s.mu.Lock()
	return s.mu.Unlock
}

// TableLen counts the entries in db's memory, refilled or not.
func TableLen(db *DB) int {
	n := 0
	for i := range db.table.shards {
		s := &db.table.shards[i]
		s.mu.Lock()
		n += s.keys
		s.mu.Unlock()
	}
	return n
}

// Record is one bucket of a stored record.
type Record struct {
	NS      Namespace
	Limits  []bucket.Limit
	States  []bucket.State
	Updated int64
}

// DecodeRecord decodes a stored record (see encode).
func DecodeRecord(rec []byte) ([]Record, error) {
	e, err := decode(rec)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(e.subs))
	for i, s := range e.subs {
		out[i] = Record{NS: s.ns, Limits: s.limits, States: s.states, Updated: s.updated}
	}
	return out, nil
}

// EncodeRecord encodes rs as a flush stores them.
func EncodeRecord(rs ...Record) []byte {
	e := newEntry("")
	for _, r := range rs {
		s := e.add(r.NS, r.Limits)
		copy(s.states, r.States)
		s.updated = r.Updated
	}
	return encode(nil, e)
}

// DecodePage calls f with each key and record of a stored page.
func DecodePage(page []byte, f func(key, rec []byte) error) error { return decodePage(page, f) }

// Unseal checks a stored value's checksum (under its bbolt key) and
// returns the value without it.
func Unseal(key, stored []byte) ([]byte, error) { return unseal(key, stored) }

// Retally rewrites tx's meta digest to match the values it holds, as a
// file that bucketd wrote has it.
func Retally(tx *bolt.Tx) error { return retally(tx) }

// Seal returns v sealed under key, as it is stored.
func Seal(key, v []byte) []byte { return seal(key, v) }

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errCorrupt

// CheckpointKey is the meta key of the log's first seq the pages do not hold.
var CheckpointKey = checkpointKey

// The file formats.
const (
	FormatPages = formatPages
	FileFormat  = fileFormat
)

// WALDir returns the directory of db's write-ahead log.
func WALDir(db *DB) string { return db.walDir }

// WALSize returns the bytes of db's log, with the records not yet written.
func WALSize(db *DB) int64 { return db.wal.Size() }

// WALLastSeq returns the seq of the last record appended to db's log.
func WALLastSeq(db *DB) uint64 { return db.wal.LastSeq() }

// ReplayRecord replays the journal record p into db's table, as Open does.
// It takes no shard lock (Open runs alone): db must not be in use.
func ReplayRecord(db *DB, p []byte) error { return db.replayRecord(p) }

// JournalPut returns the journal record of key's bucket r, as a change
// writes it; r's instants are wall time.
func JournalPut(key string, r Record) []byte {
	e := newEntry(key)
	s := e.add(r.NS, r.Limits)
	copy(s.states, r.States)
	s.updated = r.Updated
	return appendPut(nil, key, s, 0)
}

// JournalDelete returns the journal record of a reset of key in ns.
func JournalDelete(key string, ns Namespace) []byte { return appendDelete(nil, key, ns) }

// JournalDeleteKey returns the journal record of a reset of every bucket of key.
func JournalDeleteKey(key string) []byte { return appendDeleteKey(nil, key) }

// JournalClear returns the journal record of a Clear.
func JournalClear() []byte { return []byte{opClear} }

// JournalOf returns the journal record that a change of (ns, key)'s bucket
// would write now, as it is in db's memory (refilled or not); false if
// there is no such bucket in memory.
func JournalOf(db *DB, ns Namespace, key string) ([]byte, bool) {
	s, _, h := db.table.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _, _ := s.lookup(h, key, ns, db.table.specs)
	if r < 0 {
		return nil, false
	}
	var states [bucket.MaxLimits]bucket.State
	b := s.view(r, db.table.specs, &states)
	return appendPut(nil, key, &b, db.wallOffset()), true
}

// WithLogFiles returns opts with which the write-ahead log opens its
// segment files through open, so that a test can make writes or syncs fail.
func WithLogFiles(opts Options, open func(path string) (wal.File, error)) Options {
	opts.logFile = open
	return opts
}

// SetCheckpointBatch makes db's checkpoints write about n bytes of pages
// per transaction.
func SetCheckpointBatch(db *DB, n int) {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.batchBytes = n
}
