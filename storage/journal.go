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
	s, pg := db.table.locate(key)
	e := s.get(pg, key)
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
		var old *sub
		if e != nil {
			old = e.find(b.ns)
		}
		now := db.now()
		d := b.untilFull(time.Unix(0, now))
		if d == 0 { // refilled since: no bucket
			if e != nil && e.remove(b.ns) {
				if len(e.subs) == 0 {
					delete(s.m[pg], key)
				}
				s.markLocked(pg)
			}
			return nil
		}
		db.putLocked(s, pg, e, old, b.ns, key, db.limits(b.limits), b.states, b.updated, 0)
		e = s.get(pg, key)
		nb := e.find(b.ns)
		nb.fullAt = now + int64(d)
		if nb.fullAt < now {
			nb.fullAt = 1<<63 - 1
		}
		return nil
	case opDelete:
		ns := r.namespace()
		if r.err == nil && len(r.b) != 0 {
			r.err = fmt.Errorf("%w: %d bytes after a delete", errCorrupt, len(r.b))
		}
		if r.err != nil {
			return r.err
		}
		if e != nil && e.remove(ns) {
			if len(e.subs) == 0 {
				delete(s.m[pg], key)
			}
			s.markLocked(pg)
		}
		return nil
	case opDeleteKey:
		if len(r.b) != 0 {
			return fmt.Errorf("%w: %d bytes after a delete", errCorrupt, len(r.b))
		}
		if e != nil {
			delete(s.m[pg], key)
			s.markLocked(pg)
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
		s.clearLocked()
		s.mu.Unlock()
	}
}

// clearLocked empties s and marks every page of it changed. s.mu must be
// held.
func (s *shard) clearLocked() {
	for _, m := range s.m {
		clear(m)
	}
	s.dirty = 1<<pagesPerShard - 1
}

// appendStr appends a uvarint length and s.
func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
