package wal

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
)

// MaxPayload is the largest payload of a record, in bytes (1 MiB). Append
// refuses a larger one, and Replay takes a larger length for damage.
const MaxPayload = 1 << 20

// recordHeaderLen is the length of a record's frame before its payload:
// length (4 bytes), CRC (4), seq (8).
const recordHeaderLen = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the frame of record (seq, payload) to dst.
func appendRecord(dst []byte, seq uint64, payload []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, recordHeaderLen+len(payload))[:n+recordHeaderLen]
	h := dst[n:]
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	binary.LittleEndian.PutUint32(h[4:8], checksum(h[8:16], payload))
	return append(dst, payload...)
}

// checksum returns the CRC-32C of seq's 8 bytes followed by payload.
func checksum(seq, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(seq, castagnoli), castagnoli, payload)
}

// scanResult is what scanSegment found in a segment file.
type scanResult struct {
	size int64  // the file's length in bytes
	good int64  // length of its valid prefix: the header and whole valid records
	last uint64 // seq of its last valid record; first-1 when it has none
	// bad says why the bytes from offset good on are not records; empty
	// when good == size, or when those bytes are all zero (padding).
	bad string
	// padded reports that the bytes from offset good on are all zero: the
	// room a log that preallocates (Options.Preallocate) wrote ahead of its
	// records, which ends the segment cleanly.
	padded bool
	// tornHeader reports a file shorter than a header that holds a prefix
	// of one (then good is 0).
	tornHeader bool
}

// damaged reports whether the segment has a tail to cut.
func (r scanResult) damaged() bool { return (r.good < r.size && !r.padded) || r.tornHeader }

// stop ends a scan at offset res.good, where read holds the bytes read from
// there so far and r the rest of the segment. If they are all zero, the
// segment ends in padding; otherwise why says what is wrong there.
func (res *scanResult) stop(r io.Reader, read []byte, why string) error {
	zero, err := allZero(r, read)
	if err != nil {
		return err
	}
	if zero {
		res.padded = true
	} else {
		res.bad = why
	}
	return nil
}

// allZero reports whether read and every byte left in r are zero.
func allZero(r io.Reader, read []byte) (bool, error) {
	if slices.ContainsFunc(read, func(b byte) bool { return b != 0 }) {
		return false, nil
	}
	var buf [4096]byte
	for {
		n, err := r.Read(buf[:])
		if slices.ContainsFunc(buf[:n], func(b byte) bool { return b != 0 }) {
			return false, nil
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// scanSegment reads the segment file at path, whose name says that its
// first record has seq first, as scan does.
func scanSegment(path string, first uint64, fn func(seq uint64, payload []byte) error) (scanResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return scanResult{last: first - 1}, err
	}
	defer f.Close() // read only: a close error cannot lose data
	info, err := f.Stat()
	if err != nil {
		return scanResult{last: first - 1}, err
	}
	// bufio's buffer is at least 16 bytes, the length of a record header.
	return scan(bufio.NewReaderSize(f, int(min(info.Size(), 64<<10))), info.Size(), first, fn)
}

// scan reads a segment of size bytes from r, whose first record has seq
// first, and calls fn (if not nil) for each valid record in order, with a
// payload that is only valid during the call. It stops at the first
// invalid record and reports where and why in the result. The error is an
// I/O error, an error wrapping ErrCorrupt or ErrVersion for a file that is
// not a segment of this format, or fn's.
//
// Whatever the bytes, it allocates at most min(MaxPayload, size) bytes for
// payloads.
func scan(r io.Reader, size int64, first uint64, fn func(seq uint64, payload []byte) error) (scanResult, error) {
	res := scanResult{size: size, last: first - 1}
	hdr := make([]byte, min(size, int64(headerLen)))
	if _, err := io.ReadFull(r, hdr); err != nil {
		return res, err
	}
	torn, err := checkHeader(hdr)
	if err != nil {
		return res, err
	}
	if torn {
		res.tornHeader, res.bad = true, "the file header is cut short"
		return res, nil
	}

	res.good = int64(headerLen)
	var frame [recordHeaderLen]byte
	var payload []byte
	for expect := first; res.good < res.size; expect++ {
		rest := res.size - res.good
		if rest < recordHeaderLen {
			return res, res.stop(r, nil, fmt.Sprintf("a record header cut short (%d of %d bytes)", rest, recordHeaderLen))
		}
		if _, err := io.ReadFull(r, frame[:]); err != nil {
			return res, err
		}
		n := int64(binary.LittleEndian.Uint32(frame[0:4]))
		if n > MaxPayload {
			return res, res.stop(r, frame[:], fmt.Sprintf("a record length of %d bytes, over the limit of %d", n, MaxPayload))
		}
		if n > rest-recordHeaderLen {
			return res, res.stop(r, frame[:], fmt.Sprintf("a record cut short (%d of %d payload bytes)", rest-recordHeaderLen, n))
		}
		payload = slices.Grow(payload[:0], int(n))[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return res, err
		}
		if checksum(frame[8:16], payload) != binary.LittleEndian.Uint32(frame[4:8]) {
			return res, res.stop(r, slices.Concat(frame[:], payload), "a record whose checksum does not match")
		}
		if seq := binary.LittleEndian.Uint64(frame[8:16]); seq != expect {
			return res, res.stop(r, slices.Concat(frame[:], payload), fmt.Sprintf("a record with seq %d where %d was due", seq, expect))
		}
		if fn != nil {
			if err := fn(expect, payload); err != nil {
				return res, err
			}
		}
		res.good += recordHeaderLen + n
		res.last = expect
	}
	return res, nil
}
