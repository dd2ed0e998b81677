package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Format 3 seals every value bucketd stores in bbolt with a CRC-32C:
//
//   - a page (bucket "pages") and an override (bucket "overrides") is its
//     bytes, then a 4-byte little-endian CRC-32C of its bbolt key and its
//     bytes, so that a value under the wrong key is caught too;
//   - meta "digest" holds the count and the sum of the CRCs of the pages,
//     the same of the overrides, and a CRC-32C of the file's other meta
//     values (format, seed, clock, checkpoint) and of itself, so that a
//     page or override that went missing, or came back from an older
//     commit, is caught, as is a changed meta value.
//
// The page and record formats themselves (appendPage, encode) are not
// changed: the seal is added where a value is put into bbolt and checked
// where it is read out.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// digestKey is the meta key of the digest.
var digestKey = []byte("digest")

// sealSize is the size of a value's trailer.
const sealSize = 4

// valueSum is the CRC-32C of a stored value v under key.
func valueSum(key, v []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, v)
}

// seal returns v with its trailer, in a new slice.
func seal(key, v []byte) []byte {
	out := make([]byte, len(v)+sealSize)
	copy(out, v)
	putSeal(out, key)
	return out
}

// unseal checks a stored value's trailer and returns the value without it.
func unseal(key, stored []byte) ([]byte, error) {
	if len(stored) < sealSize {
		return nil, fmt.Errorf("%d bytes, shorter than a checksum", len(stored))
	}
	v := stored[:len(stored)-sealSize]
	if got, want := binary.LittleEndian.Uint32(stored[len(v):]), valueSum(key, v); got != want {
		return nil, fmt.Errorf("checksum %08x, want %08x", got, want)
	}
	return v, nil
}

// tally is the count and sum of the checksums of the values of a bucket.
type tally struct {
	n   uint64
	sum uint64
}

func (t *tally) add(stored []byte) {
	t.n++
	t.sum += uint64(binary.LittleEndian.Uint32(stored[len(stored)-sealSize:]))
}

func (t *tally) remove(stored []byte) {
	t.n--
	t.sum -= uint64(binary.LittleEndian.Uint32(stored[len(stored)-sealSize:]))
}

// digest is the meta "digest": the pages' tally and the overrides'.
type digest struct {
	pages, overrides tally
}

const digestSize = 4*8 + sealSize

// metaSum is the CRC-32C of the meta values the digest covers and of the
// digest's own tallies b.
func metaSum(meta *bolt.Bucket, b []byte) uint32 {
	h := crc32.New(castagnoli)
	for _, k := range [][]byte{formatKey, seedKey, clockKey, checkpointKey} {
		v := meta.Get(k)
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(v))))
		h.Write(v)
	}
	h.Write(b)
	return h.Sum32()
}

// readDigest reads and checks meta's digest.
func readDigest(meta *bolt.Bucket) (digest, error) {
	b := meta.Get(digestKey)
	if len(b) != digestSize {
		return digest{}, fmt.Errorf("the meta digest is %d bytes, want %d", len(b), digestSize)
	}
	le := binary.LittleEndian
	if got, want := le.Uint32(b[32:]), metaSum(meta, b[:32]); got != want {
		return digest{}, fmt.Errorf("the meta values (format, seed, clock, checkpoint) do not match their checksum (%08x, want %08x)", got, want)
	}
	return digest{
		pages:     tally{le.Uint64(b[0:]), le.Uint64(b[8:])},
		overrides: tally{le.Uint64(b[16:]), le.Uint64(b[24:])},
	}, nil
}

// writeDigest stores d, sealing the other meta values as they are now:
// call it last in a transaction that changes them.
func writeDigest(meta *bolt.Bucket, d digest) error {
	b := make([]byte, 0, digestSize)
	for _, v := range []uint64{d.pages.n, d.pages.sum, d.overrides.n, d.overrides.sum} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, metaSum(meta, b))
	return meta.Put(digestKey, b)
}

// sealer puts sealed values into one transaction and keeps the digest: a
// put or delete adjusts it, and done writes it.
type sealer struct {
	meta *bolt.Bucket
	d    digest
}

// newSealer reads tx's digest.
func newSealer(tx *bolt.Tx) (*sealer, error) {
	meta := tx.Bucket(metaName)
	d, err := readDigest(meta)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return &sealer{meta: meta, d: d}, nil
}

// putSeal puts in the last sealSize bytes of b the trailer of the value
// before them under key: a value sealed where it was built, with no copy
// (see sealer.putSealed).
func putSeal(b []byte, key []byte) {
	v := b[:len(b)-sealSize]
	binary.LittleEndian.PutUint32(b[len(v):], valueSum(key, v))
}

// put stores v under key in b (of kind t), sealed.
func (s *sealer) put(b *bolt.Bucket, t *tally, key, v []byte) error {
	return s.putSealed(b, t, key, seal(key, v))
}

// putSealed stores sealed, a value with its trailer (seal, appendSeal),
// under key in b (of kind t). bbolt keeps sealed until the transaction
// ends: it must not change before then.
func (s *sealer) putSealed(b *bolt.Bucket, t *tally, key, sealed []byte) error {
	if old := b.Get(key); len(old) >= sealSize {
		t.remove(old)
	}
	if err := b.Put(key, sealed); err != nil {
		return err
	}
	t.add(sealed)
	return nil
}

// delete removes key from b (of kind t).
func (s *sealer) delete(b *bolt.Bucket, t *tally, key []byte) error {
	if old := b.Get(key); len(old) >= sealSize {
		t.remove(old)
	}
	return b.Delete(key)
}

// done writes the digest.
func (s *sealer) done() error { return writeDigest(s.meta, s.d) }
