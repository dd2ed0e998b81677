package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// recordVersion is the first byte of every stored bucket. Version 1 (no
// namespace kind: every bucket a policy's) is still read; a record of
// another version is refused at load rather than misread.
const (
	recordVersion   = 2
	recordVersionV1 = 1
)

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("corrupt record")

// encode appends the stored form of e to b: a version byte (2), then one
// record per bucket of the key, back to back:
//
//	byte    namespace kind
//	uvarint len(namespace name), name bytes
//	varint  updated (Unix ns)
//	uvarint number of limits, then per limit:
//	  varint capacity, varint rate tokens, varint rate period (ns),
//	  varint tokens, varint at (Unix ns), uvarint rem
func encode(b []byte, e *entry) []byte {
	b = append(b, recordVersion)
	for _, s := range e.subs {
		b = appendSub(b, s, 0)
	}
	return b
}

// appendSub appends one bucket's record, as encode writes it, with its
// instants moved by shift ns.
func appendSub(b []byte, s *sub, shift int64) []byte {
	b = appendNS(b, s.ns)
	b = binary.AppendVarint(b, s.updated+shift)
	b = binary.AppendUvarint(b, uint64(len(s.limits)))
	for i, l := range s.limits {
		st := s.states[i]
		b = binary.AppendVarint(b, int64(l.Capacity))
		b = binary.AppendVarint(b, int64(l.Rate.Tokens))
		b = binary.AppendVarint(b, int64(l.Rate.Per))
		b = binary.AppendVarint(b, int64(st.Tokens))
		b = binary.AppendVarint(b, st.At+shift)
		b = binary.AppendUvarint(b, st.Rem)
	}
	return b
}

// appendNS appends a namespace: its kind's byte, uvarint len(name), name.
func appendNS(b []byte, ns Namespace) []byte {
	b = append(b, byte(ns.Kind))
	b = binary.AppendUvarint(b, uint64(len(ns.Name)))
	return append(b, ns.Name...)
}

// maxSubs is the most buckets one key may have on disk; more is corruption.
const maxSubs = 1024

// decode reads a record written by encode. It copies everything it keeps,
// so b may be memory owned by a bbolt transaction. The entry's key is left
// for the caller to set.
func decode(b []byte) (*entry, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", errCorrupt)
	}
	if b[0] != recordVersion && b[0] != recordVersionV1 {
		return nil, fmt.Errorf("%w: version %d, want %d", errCorrupt, b[0], recordVersion)
	}
	r := reader{b: b[1:], v1: b[0] == recordVersionV1}
	e := newEntry("")
	for len(r.b) > 0 || len(e.subs) == 0 {
		if len(e.subs) == maxSubs {
			return nil, fmt.Errorf("%w: more than %d buckets", errCorrupt, maxSubs)
		}
		if err := decodeSub(&r, e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// decodeSub reads one bucket's record from r and adds it to e.
func decodeSub(r *reader, e *entry) error {
	ns := r.namespace()
	updated := r.varint()
	n := r.uvarint()
	if r.err == nil && (n == 0 || n > bucket.MaxLimits) {
		r.err = fmt.Errorf("%w: %d limits", errCorrupt, n)
	}
	if r.err != nil {
		return r.err
	}
	if e.find(ns) != nil {
		return fmt.Errorf("%w: two buckets in %s", errCorrupt, ns)
	}
	limits := make([]bucket.Limit, n)
	states := make([]bucket.State, n)
	for i := range limits {
		l := bucket.Limit{
			Capacity: bucket.Tokens(r.varint()),
			Rate:     bucket.Rate{Tokens: bucket.Tokens(r.varint()), Per: time.Duration(r.varint())},
		}
		s := bucket.State{Tokens: bucket.Tokens(r.varint()), At: r.varint(), Rem: r.uvarint()}
		if r.err != nil {
			return r.err
		}
		if err := l.Validate(); err != nil {
			return fmt.Errorf("%w: %v", errCorrupt, err)
		}
		if s.Tokens < 0 || s.Tokens > l.Capacity || s.Rem >= uint64(l.Rate.Per) {
			return fmt.Errorf("%w: state %+v out of range for limit %v", errCorrupt, s, l)
		}
		limits[i], states[i] = l, s
	}
	sub := e.add(ns, limits)
	copy(sub.states, states)
	sub.updated = updated
	return nil
}

// namespace reads what appendNS wrote (a name alone in a version-1
// record: a policy's).
func (r *reader) namespace() Namespace {
	ns := Namespace{Kind: KindPolicy}
	if !r.v1 {
		ns.Kind = Kind(r.byte())
	}
	ns.Name = r.str()
	if r.err == nil {
		if err := ns.Validate(); err != nil {
			r.err = fmt.Errorf("%w: %v", errCorrupt, err)
		}
	}
	return ns
}

// str reads a uvarint length and that many bytes, copied.
func (r *reader) str() string {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: length %d past the end", errCorrupt, n)
	}
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// reader reads varints, keeping the first error.
type reader struct {
	b   []byte
	err error
	v1  bool // a record of version 1: no namespace kinds
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = fmt.Errorf("%w: cut short", errCorrupt)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if !r.canonical(n) {
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if !r.canonical(n) {
		return 0
	}
	r.b = r.b[n:]
	return v
}

// canonical reports whether the varint of n bytes at the start of r.b was
// read and is in its shortest form, the only one encode writes, and keeps
// the error if not: a longer form (a final 0x00 byte) would decode to a
// record that encodes to other bytes.
func (r *reader) canonical(n int) bool {
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		r.err = fmt.Errorf("%w: bad varint", errCorrupt)
		return false
	}
	return true
}
