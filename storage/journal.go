package storage

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The journal: every change of the table is one record of the write-ahead
// log (package wal), so that persistence costs what changes, not what is
// stored. A record's payload is an operation byte, then:
//
//	opPut       uvarint len(key), key, then the bucket as appendSub writes
//	            it, its instants in wall time (Unix ns)
//	opDelete    uvarint len(key), key, then the namespace as appendNS writes it
//	opDeleteKey uvarint len(key), key: every bucket of the key
//	opClear     nothing: every bucket of every key
//
// The log's own framing adds a length, a CRC-32C and the sequence number.
// A record holds a bucket's whole state, not a difference, so replaying a
// record that a checkpoint already holds changes nothing, and the last
// record of a bucket decides.
const (
	opPut       byte = 1
	opDelete    byte = 2
	opDeleteKey byte = 3
	opClear     byte = 4
)

// appendPut appends the record of (key, s) to b, with the instants of s
// moved by shift ns onto wall time.
func appendPut(b []byte, key string, s *sub, shift int64) []byte {
	b = append(b, opPut)
	b = appendStr(b, key)
	return appendSub(b, s, shift)
}

func appendDelete(b []byte, key string, ns Namespace) []byte {
	b = append(b, opDelete)
	b = appendStr(b, key)
	return appendNS(b, ns)
}

func appendDeleteKey(b []byte, key string) []byte {
	b = append(b, opDeleteKey)
	return appendStr(b, key)
}

// replayRecord replays one journal record into the table; shift moves its wall
// instants onto the DB's timeline. It marks what it changes dirty, for the
// next checkpoint.
func (db *DB) replayRecord(p []byte) error {
	if len(p) == 0 {
		return fmt.Errorf("%w: empty journal record", errCorrupt)
	}
	shift := -db.wallOffset()
	op := p[0]
	r := reader{b: p[1:]}
	if op == opClear {
		if len(r.b) != 0 {
			return fmt.Errorf("%w: clear record of %d bytes", errCorrupt, len(p))
		}
		db.table.clear()
		return nil
	}
	key := r.str()
	if r.err == nil && key == "" {
		r.err = fmt.Errorf("%w: empty key", errCorrupt)
	}
	if r.err != nil {
		return r.err
	}
	s, _, h := db.table.locate(key)
	switch op {
	case opPut:
		tmp := newEntry(key)
		if err := decodeSub(&r, tmp); err != nil {
			return err
		}
		if len(r.b) != 0 {
			return fmt.Errorf("%w: %d bytes after a bucket", errCorrupt, len(r.b))
		}
		b := tmp.subs[0]
		b.shift(shift)
		db.restore(s, h, key, b, db.now())
		return nil
	case opDelete:
		ns := r.namespace()
		if r.err == nil && len(r.b) != 0 {
			r.err = fmt.Errorf("%w: %d bytes after a delete", errCorrupt, len(r.b))
		}
		if r.err != nil {
			return r.err
		}
		first, _ := s.find(h, key)
		s.removeNS(first, ns, db.table.specs)
		return nil
	case opDeleteKey:
		if len(r.b) != 0 {
			return fmt.Errorf("%w: %d bytes after a delete", errCorrupt, len(r.b))
		}
		if first, _ := s.find(h, key); first >= 0 {
			s.removeKey(first, db.table.specs)
		}
		return nil
	}
	return fmt.Errorf("%w: journal operation %d", errCorrupt, op)
}

// clear empties every shard, one at a time under its lock, and marks every
// page changed.
func (t *table) clear() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		s.clearLocked(t.specs)
		s.mu.Unlock()
	}
}

// free gives back the memory of every shard, one at a time under its
// lock, leaving the table empty.
func (t *table) free() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		s.freeLocked(t.specs)
		s.mu.Unlock()
	}
}

// restore stores b, read from the file or the log with its instants moved
// onto the timeline, as key's bucket in b.ns, refilled to now; a bucket
// that has refilled since is dropped instead (and its page marked, so that
// the file drops it too). It reports whether b was kept. The caller holds
// s.mu, or runs alone (Open).
func (db *DB) restore(s *shard, h uint64, key string, b *sub, now int64) bool {
	r, first, slot := s.lookup(h, key, b.ns, db.table.specs)
	d := b.untilFull(time.Unix(0, now))
	if d == 0 { // refilled since: no bucket
		s.removeNS(first, b.ns, db.table.specs)
		s.markLocked(pageOf(h))
		return false
	}
	b.fullAt = now + int64(d)
	if b.fullAt < now { // saturate, as touch does
		b.fullAt = 1<<63 - 1
	}
	db.table.put(s, h, key, r, first, slot, b)
	return true
}

// appendStr appends a uvarint length and s.
func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
