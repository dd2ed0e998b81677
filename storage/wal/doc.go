// Package wal is a write-ahead log of opaque records, for the embedded
// store: each record is a payload that the caller encodes, numbered by a
// sequence number (seq) that the log assigns, 1, 2, 3, ... without gaps.
//
// # Use
//
// At start, Replay the log from the first seq that the caller's checkpoint
// does not cover, then Open it with that seq as Options.NextSeq. Append assigns a seq and buffers the record
// (no I/O); Sync(seq) returns once that record and every one before it are
// on disk. Records that arrive together share one write and one fdatasync
// (group commit). Flush writes what is pending without waiting, for a
// once-a-second mode; WriteOut writes it without a sync, so that a crash of
// the process (not of the machine) keeps it until the next Flush syncs it. After a checkpoint covers every record below s,
// Rotate (which returns the s to checkpoint up to) and RemoveBefore(s)
// bound the log's size; the log never rotates by itself.
//
// # Files
//
// A log is a directory of segment files, named after the first seq that the
// segment may hold, as 16 hexadecimal digits: 0000000000000001.wal. A
// segment is created whole (written to a .tmp file, synced, renamed, the
// directory synced), and a new segment is only created once the previous
// one is synced, so only the last segment can end in a torn write. (If
// that directory sync fails, the next group syncs the directory before it
// acknowledges any record.)
//
// A segment starts with a 12-byte header: the magic "bucketd wal" and a
// format version byte (1). Records follow, each framed as
//
//	length  uint32, little-endian: the payload's length in bytes, at most MaxPayload
//	crc     uint32, little-endian: CRC-32C (Castagnoli) of seq's 8 bytes, then the payload
//	seq     uint64, little-endian: the record's seq, one more than the record before it
//	payload length bytes
//
// The first record of a segment has the seq in the segment's name.
//
// A log opened with Options.Preallocate writes zeros ahead of its records
// (a new segment is created with them; a group that reaches past them
// writes as many more), so that a group overwrites zeros and its fdatasync
// commits no change of the file's length. Zeros after the last record end
// a segment cleanly: they are not damage.
//
// # Group commit
//
// The first goroutine to call Sync while no group is being written becomes
// the leader; the others wait. The leader writes every pending record with
// one write at the end of the good data of the current segment, calls
// fdatasync once, and wakes every waiter whose record it covered.
//
// Before it writes, a leader gathers: it waits up to Options.Window for
// more records, but only until as many records are pending as the last
// group held (or Options.MaxGroupBytes), so that a steady load of n
// concurrent writers forms groups of n without waiting out the window,
// and one writer alone never waits. A goroutine that waited behind an
// earlier group leads the next one at once: the records appended while
// that group was being written form it. (A fixed window would cost about
// 1ms, not 200µs, per group: Go's timers round sub-millisecond sleeps up to
// 1ms when every goroutine is blocked, as they are while a group gathers.)
//
// # Failures
//
// If the write or the fdatasync of a group fails, every waiter whose record
// is in the group gets the error, and the log stays usable:
//
//   - the segment is truncated back to the length of its good data (the
//     data of the groups that succeeded), so that no failed bytes stay in it
//     where possible;
//   - the group's records go back to the front of the pending records,
//     ahead of those appended since, so that the next Sync or Flush writes
//     them again, at the same offset. The failed write is never merely
//     retried with an fdatasync: after a failed fdatasync the kernel may
//     have dropped the dirty pages, so the bytes are written again.
//
// Since the retry writes the same bytes at the same offset, followed by
// more, it overwrites whatever the failed write left even when the
// truncation fails too: the file never holds a torn record before good
// ones. An error from Sync therefore means "not known to be durable": the
// records stay in the log and reach the disk with a later successful
// group, or are lost (never acknowledged) if the process stops first; after
// a crash they may or may not be replayed.
//
// # Recovery
//
// Replay and Open cut a torn or damaged tail of the last segment (keeping
// the bytes aside, with a warning; a tail of zeros only is left alone), and refuse damage in an earlier
// segment, which would mean that acknowledged records are lost: see Replay.
package wal
