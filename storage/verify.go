package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// ErrDamaged is returned by Open and Check for a data file whose bytes are
// not what bucketd wrote: a truncated file, a flipped byte, a page of
// another file. The error names the file and what is wrong.
var ErrDamaged = errors.New("damaged")

// errNotBolt marks a file in which neither meta page is bbolt's: not a
// database at all, rather than a damaged one.
var errNotBolt = errors.New("not a bbolt file")

// The on-disk layout of bbolt (go.etcd.io/bbolt internal/common), read here
// with pread before bbolt maps the file: bbolt trusts every page header and
// offset it follows, and a damaged one makes it panic (in a goroutine of
// its own, which no recover reaches) or fault on its memory map.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16 // id u64, flags u16, count u16, overflow u32
	boltElement      = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	boltBucketHeader = 16 // root pgid u64, sequence u64
	boltMetaSize     = 64 // magic, version, pageSize, flags u32; root u64, sequence u64, freelist, pgid, txid, checksum u64
	boltNoFreelist   = ^uint64(0)

	boltBranch   = 0x01
	boltLeaf     = 0x02
	boltMeta     = 0x04
	boltFreelist = 0x10

	boltBucketLeaf = 0x01 // a leaf element that is a nested bucket
)

// boltMetaPage is a meta page of a bbolt file, as read.
type boltMetaPage struct {
	pageSize uint32
	root     uint64 // the root bucket's root page
	freelist uint64
	pgid     uint64 // the high-water mark: pages [0, pgid) are in use or free
	txid     uint64
}

// parseBoltMeta reads a meta page's body (after the page header) and
// checks it as bbolt's Meta.Validate does.
func parseBoltMeta(b []byte) (boltMetaPage, error) {
	if len(b) < boltMetaSize {
		return boltMetaPage{}, errors.New("cut short")
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != boltMagic {
		return boltMetaPage{}, errors.New("no bbolt magic number")
	}
	if v := le.Uint32(b[4:]); v != boltVersion {
		return boltMetaPage{}, fmt.Errorf("bbolt version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(b[:56])
	if h.Sum64() != le.Uint64(b[56:]) {
		return boltMetaPage{}, errors.New("its checksum does not match")
	}
	return boltMetaPage{
		pageSize: le.Uint32(b[8:]),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		pgid:     le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}, nil
}

// boltWalk checks a bbolt file through pread.
type boltWalk struct {
	f        io.ReaderAt
	size     int64
	pageSize int64
	meta     boltMetaPage
	used     map[uint64]bool // pages reached (with their overflow)
	// warnings are damage that bbolt itself recovers from (a damaged meta
	// page, when the other is sound).
	warnings []string

	// salvage, when set, makes the walk go on past damage: every value
	// reached is passed to it with its top-level bucket's name, and each
	// part of the tree that cannot be read is named in lost.
	salvage func(bucket string, k, v []byte)
	lost    []string
	bucket  string // the top-level bucket being walked; "" in the root
}

// damaged returns err, or in a salvage walk notes it and returns nil.
func (w *boltWalk) damaged(err error) error {
	if w.salvage == nil {
		return err
	}
	w.lost = append(w.lost, err.Error())
	return nil
}

// verifyBolt checks the structure of the bbolt file f of size bytes, as
// bbolt's Open and its rebuild of the free list will read it: both meta
// pages, the size, and every page reachable from the root (header, type,
// bounds of every element, key order, no page reached twice), plus the
// free list when one is stored. It never panics, whatever the bytes. A nil
// error means bbolt can open and walk the file without faulting; the
// values themselves are checked by their own checksums.
func verifyBolt(f io.ReaderAt, size int64) (*boltWalk, error) {
	w := &boltWalk{f: f, size: size, used: map[uint64]bool{0: true, 1: true}}
	if err := w.readMeta(); err != nil {
		return w, err
	}
	if _, err := w.walk(w.meta.root, nil, nil, 0); err != nil {
		return w, err
	}
	if w.meta.freelist != boltNoFreelist {
		if err := w.checkFreelist(); err != nil {
			return w, err
		}
	}
	return w, nil
}

// readMeta finds the page size as bbolt does (the first valid meta page,
// at 0 or at 1 KiB << i), then picks the valid meta page of the higher
// transaction, and checks it against the file.
func (w *boltWalk) readMeta() error {
	var first [boltPageHeader + boltMetaSize]byte
	if w.size < int64(len(first)) {
		return fmt.Errorf("%w: it is %d bytes long, shorter than a bbolt meta page", errNotBolt, w.size)
	}
	if _, err := w.f.ReadAt(first[:], 0); err != nil {
		return fmt.Errorf("read the first meta page: %w", err)
	}
	m0, err0 := parseBoltMeta(first[boltPageHeader:])
	if err0 == nil {
		w.pageSize = int64(m0.pageSize)
	} else {
		for i := 0; i <= 14; i++ {
			pos := int64(1024) << i
			if pos+int64(len(first)) > w.size {
				break
			}
			var b [boltPageHeader + boltMetaSize]byte
			if _, err := w.f.ReadAt(b[:], pos); err != nil {
				break
			}
			if m, err := parseBoltMeta(b[boltPageHeader:]); err == nil {
				w.pageSize = int64(m.pageSize)
				break
			}
		}
		if w.pageSize == 0 {
			return fmt.Errorf("%w: neither meta page is sound (the first: %v)", errNotBolt, err0)
		}
	}
	if w.pageSize < 1024 || w.pageSize > 1<<24 || w.pageSize&(w.pageSize-1) != 0 {
		return fmt.Errorf("its meta page has a page size of %d", w.pageSize)
	}
	if w.size < 2*w.pageSize {
		return fmt.Errorf("%w: it is %d bytes long, shorter than its two meta pages of %d bytes", errNotBolt, w.size, w.pageSize)
	}
	var metas [2]boltMetaPage
	var errs [2]error
	for i := range metas {
		var b [boltPageHeader + boltMetaSize]byte
		if _, err := w.f.ReadAt(b[:], int64(i)*w.pageSize); err != nil {
			return fmt.Errorf("read meta page %d: %w", i, err)
		}
		metas[i], errs[i] = parseBoltMeta(b[boltPageHeader:])
		if errs[i] == nil && int64(metas[i].pageSize) != w.pageSize {
			errs[i] = fmt.Errorf("a page size of %d, not %d", metas[i].pageSize, w.pageSize)
		}
	}
	// As bbolt's DB.meta: the higher txid, if sound, else the other. A
	// damaged meta page beside a sound one is what a crash during a commit
	// leaves, and bbolt falls back to the commit before: warn.
	a, b := 0, 1
	if errs[0] == nil && errs[1] == nil && metas[1].txid > metas[0].txid || errs[0] != nil {
		a, b = 1, 0
	}
	switch {
	case errs[a] != nil:
		return fmt.Errorf("neither meta page is sound (page 0: %v; page 1: %v)", errs[0], errs[1])
	case errs[b] != nil:
		w.warnings = append(w.warnings, fmt.Sprintf("meta page %d is damaged (%v): using meta page %d, of transaction %d", b, errs[b], a, metas[a].txid))
	}
	m := metas[a]
	w.meta = m
	switch {
	case m.pgid < 3 || m.pgid > uint64(w.size/w.pageSize):
		return fmt.Errorf("it is %d bytes long, but its meta page %d says it holds %d pages of %d bytes (%d bytes): the file is cut short",
			w.size, a, m.pgid, w.pageSize, m.pgid*uint64(w.pageSize))
	case m.root < 2 || m.root >= m.pgid:
		return fmt.Errorf("its meta page %d gives root page %d, outside pages 2 to %d", a, m.root, m.pgid-1)
	case m.freelist != boltNoFreelist && (m.freelist < 2 || m.freelist >= m.pgid):
		return fmt.Errorf("its meta page %d gives free-list page %d, outside pages 2 to %d", a, m.freelist, m.pgid-1)
	}
	return nil
}

// page reads page id with its overflow pages, checking its header.
func (w *boltWalk) page(id uint64, want ...uint16) ([]byte, error) {
	if id < 2 || id >= w.meta.pgid {
		return nil, fmt.Errorf("page %d is referenced, outside pages 2 to %d", id, w.meta.pgid-1)
	}
	var h [boltPageHeader]byte
	if _, err := w.f.ReadAt(h[:], int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: read: %w", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(h[0:]); got != id {
		return nil, fmt.Errorf("page %d: its header says it is page %d", id, got)
	}
	flags := le.Uint16(h[8:])
	ok := false
	for _, f := range want {
		ok = ok || flags == f
	}
	if !ok {
		return nil, fmt.Errorf("page %d: unexpected page type (flags %#x)", id, flags)
	}
	overflow := uint64(le.Uint32(h[12:]))
	if id+overflow >= w.meta.pgid {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the last page, %d", id, overflow, w.meta.pgid-1)
	}
	for i := id; i <= id+overflow; i++ {
		if w.used[i] {
			return nil, fmt.Errorf("page %d: reached twice (page %d of a span from %d)", i, i, id)
		}
		w.used[i] = true
	}
	b := make([]byte, int64(overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(b, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: read: %w", id, err)
	}
	return b, nil
}

// walk checks the B+tree page id (of depth depth) and everything under it:
// keys in [lo, hi) in order, as bbolt's tx.Check wants them. It returns the
// subtree's last key.
func (w *boltWalk) walk(id uint64, lo, hi []byte, depth int) ([]byte, error) {
	if depth > 64 {
		return nil, fmt.Errorf("page %d: the tree is more than 64 levels deep", id)
	}
	p, err := w.page(id, boltBranch, boltLeaf)
	if err != nil {
		return nil, err
	}
	return w.walkPage(p, fmt.Sprintf("page %d", id), lo, hi, depth)
}

// walkPage checks a branch or leaf page p (a page of the file, or an inline
// bucket's page); where names it in errors.
func (w *boltWalk) walkPage(p []byte, where string, lo, hi []byte, depth int) ([]byte, error) {
	le := binary.LittleEndian
	flags := le.Uint16(p[8:])
	count := int(le.Uint16(p[10:]))
	if boltPageHeader+count*boltElement > len(p) {
		return nil, w.damaged(fmt.Errorf("%s: %d elements do not fit in its %d bytes", where, count, len(p)))
	}
	prev := lo
	var last []byte
	for i := range count {
		e := p[boltPageHeader+i*boltElement:]
		base := boltPageHeader + i*boltElement
		pos, ksize := int(le.Uint32(e[4:])), int(le.Uint32(e[8:]))
		vsize := 0
		if flags == boltBranch {
			pos, ksize = int(le.Uint32(e[0:])), int(le.Uint32(e[4:]))
		} else {
			vsize = int(le.Uint32(e[12:]))
		}
		start := base + pos
		if pos < 0 || ksize < 0 || vsize < 0 || start > len(p) || ksize > len(p)-start || vsize > len(p)-start-ksize {
			if err := w.damaged(fmt.Errorf("%s: element %d points outside the page", where, i)); err != nil {
				return nil, err
			}
			continue
		}
		key := p[start : start+ksize]
		switch {
		case w.salvage != nil: // the values' own checksums cover their keys
		case i == 0 && prev != nil && bytes.Compare(prev, key) > 0,
			i > 0 && bytes.Compare(prev, key) >= 0:
			return nil, fmt.Errorf("%s: key %d (%x) is out of order", where, i, key)
		case hi != nil && bytes.Compare(key, hi) >= 0:
			return nil, fmt.Errorf("%s: key %d (%x) is beyond its parent's next key", where, i, key)
		}
		if flags == boltBranch {
			next := hi
			if i+1 < count {
				n := p[boltPageHeader+(i+1)*boltElement:]
				npos, nksize := int(le.Uint32(n[0:])), int(le.Uint32(n[4:]))
				nstart := base + boltElement + npos
				if npos < 0 || nksize < 0 || nstart > len(p) || nksize > len(p)-nstart {
					if w.salvage == nil {
						return nil, fmt.Errorf("%s: element %d points outside the page", where, i+1)
					}
					next = nil
				} else {
					next = p[nstart : nstart+nksize]
				}
			}
			sub, err := w.walk(le.Uint64(e[8:]), key, next, depth+1)
			if err != nil {
				if err := w.damaged(fmt.Errorf("%s (bucket %q): %w", where, w.bucket, err)); err != nil {
					return nil, err
				}
				continue
			}
			prev, last = sub, sub
			continue
		}
		prev, last = key, key
		v := p[start+ksize : start+ksize+vsize]
		if le.Uint32(e[0:])&boltBucketLeaf == 0 {
			if w.salvage != nil {
				w.salvage(w.bucket, key, v)
			}
			continue
		}
		if err := w.nested(where, key, v, depth); err != nil {
			return nil, err
		}
	}
	if flags == boltBranch && count == 0 {
		return nil, fmt.Errorf("%s: a branch page with no elements", where)
	}
	return last, nil
}

// nested walks the bucket key, of header v, in a leaf page.
func (w *boltWalk) nested(where string, key, v []byte, depth int) error {
	le := binary.LittleEndian
	if len(v) < boltBucketHeader {
		return w.damaged(fmt.Errorf("%s: bucket %q has a header of %d bytes", where, key, len(v)))
	}
	outer := w.bucket
	if outer == "" {
		w.bucket = string(key)
	}
	defer func() { w.bucket = outer }()
	if root := le.Uint64(v); root != 0 {
		if _, err := w.walk(root, nil, nil, depth+1); err != nil {
			return w.damaged(fmt.Errorf("bucket %q: %w", key, err))
		}
		return nil
	}
	in := v[boltBucketHeader:] // an inline bucket: a leaf page in the value
	if len(in) < boltPageHeader || le.Uint16(in[8:]) != boltLeaf {
		return w.damaged(fmt.Errorf("%s: inline bucket %q is not a leaf page", where, key))
	}
	_, err := w.walkPage(in, fmt.Sprintf("%s, inline bucket %q", where, key), nil, nil, depth+1)
	return err
}

// checkFreelist checks a stored free list: it lists pages that exist and
// that no tree reaches, each once.
func (w *boltWalk) checkFreelist() error {
	p, err := w.page(w.meta.freelist, boltFreelist)
	if err != nil {
		return fmt.Errorf("free list: %w", err)
	}
	le := binary.LittleEndian
	n, off := uint64(le.Uint16(p[10:])), uint64(boltPageHeader)
	if n == 0xFFFF { // the count is the first id
		if len(p) < boltPageHeader+8 {
			return errors.New("free list: cut short")
		}
		n, off = le.Uint64(p[boltPageHeader:]), off+8
	}
	if n > (uint64(len(p))-off)/8 {
		return fmt.Errorf("free list: %d ids do not fit in its %d bytes", n, len(p))
	}
	for i := range n {
		id := le.Uint64(p[off+8*i:])
		if id < 2 || id >= w.meta.pgid || w.used[id] {
			return fmt.Errorf("free list: page %d is listed free, but is in use or outside the file", id)
		}
		w.used[id] = true
	}
	return nil
}

// checkBoltFile opens path read-only and runs verifyBolt on it.
func checkBoltFile(path string) (*boltWalk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return verifyBolt(f, fi.Size())
}
