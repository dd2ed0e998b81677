package storage

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// modelBucket is what a test expects of one bucket.
type modelBucket struct {
	limits []bucket.Limit
	states []bucket.State
	fullAt int64
}

// tableDriver applies operations to one shard and to a map, its model.
type tableDriver struct {
	t     testing.TB
	tb    *table
	s     *shard
	model map[string]map[Namespace]modelBucket
	tags  uint64 // distinct hash tags: few, to force collisions
}

func newTableDriver(t testing.TB, tags uint64) *tableDriver {
	tb := newTable(7)
	t.Cleanup(tb.free)
	return &tableDriver{t: t, tb: tb, s: &tb.shards[0], model: map[string]map[Namespace]modelBucket{}, tags: tags}
}

// hash is a made-up hash whose tag takes few values, so that keys collide
// in the index and probe chains are long.
func (d *tableDriver) hash(key string) uint64 {
	return (d.tb.hash(key)%d.tags)<<32 | d.tb.hash(key)&0xffff_ff00
}

var driverNS = []Namespace{PolicyNS("a"), PolicyNS("b"), CellNS}

func driverLimits(n int, c int) []bucket.Limit {
	ls := make([]bucket.Limit, n)
	for i := range ls {
		ls[i] = bucket.Limit{Capacity: bucket.Tokens(c+i+1) * bucket.Token, Rate: bucket.Every(time.Second)}
	}
	return ls
}

func (d *tableDriver) put(key string, ns Namespace, nlimits, c int, fullAt int64) {
	ls := driverLimits(nlimits, c)
	st := make([]bucket.State, nlimits)
	for i := range st {
		st[i] = bucket.State{Tokens: bucket.Tokens(i + c), At: fullAt - 1, Rem: uint64(i)}
	}
	h := d.hash(key)
	r, first, slot := d.s.lookup(h, key, ns, d.tb.specs)
	d.tb.put(d.s, h, key, r, first, slot, &sub{ns: ns, limits: ls, states: st, updated: fullAt - 2, fullAt: fullAt})
	if d.model[key] == nil {
		d.model[key] = map[Namespace]modelBucket{}
	}
	d.model[key][ns] = modelBucket{limits: ls, states: st, fullAt: fullAt}
}

func (d *tableDriver) removeNS(key string, ns Namespace) {
	first, _ := d.s.find(d.hash(key), key)
	_, want := d.model[key][ns]
	require.Equal(d.t, want, d.s.removeNS(first, ns, d.tb.specs), "remove %s %s", key, ns)
	delete(d.model[key], ns)
	if len(d.model[key]) == 0 {
		delete(d.model, key)
	}
}

func (d *tableDriver) removeKey(key string) {
	first, _ := d.s.find(d.hash(key), key)
	require.Equal(d.t, d.model[key] != nil, first >= 0, "find %s", key)
	if first >= 0 {
		d.s.removeKey(first, d.tb.specs)
	}
	delete(d.model, key)
}

func (d *tableDriver) sweep(t int64) {
	dropped := d.s.sweepLocked(t, d.tb.specs)
	want := 0
	for k, m := range d.model {
		for ns, b := range m {
			if t >= b.fullAt {
				delete(m, ns)
			}
		}
		if len(m) == 0 {
			delete(d.model, k)
			want++
		}
	}
	require.Equal(d.t, want, dropped, "keys swept")
}

// check compares the shard with the model: every bucket, the counts, and
// that nothing else is found.
func (d *tableDriver) check() {
	t := d.t
	s := d.s
	nrec := 0
	for k, m := range d.model {
		for _, ns := range driverNS {
			r, _, _ := s.lookup(d.hash(k), k, ns, d.tb.specs)
			w, ok := m[ns]
			require.Equal(t, ok, r >= 0, "%s in %s", k, ns)
			if !ok {
				continue
			}
			nrec++
			var buf [bucket.MaxLimits]bucket.State
			b := s.view(r, d.tb.specs, &buf)
			require.Equal(t, ns, b.ns)
			require.Equal(t, w.limits, b.limits, "%s in %s", k, ns)
			require.Equal(t, w.states, b.states, "%s in %s", k, ns)
			require.Equal(t, w.fullAt, b.fullAt)
			require.Equal(t, w.fullAt-2, b.updated)
		}
	}
	require.Equal(t, len(d.model), s.keys, "keys")
	require.Equal(t, nrec, s.nrec, "records")
	keys := map[string]bool{}
	s.eachKey(func(first int) { keys[s.keyAt(s.recs[first].keyOff)] = true })
	require.Len(t, keys, len(d.model), "eachKey visits each key once")
	for k := range keys {
		_, ok := d.model[k]
		require.True(t, ok, "a key of the model: %s", k)
	}
	specs := map[string]bool{}
	for _, m := range d.model {
		for ns, b := range m {
			specs[string(specKey(nil, ns, b.limits))] = true
		}
	}
	require.Equal(t, len(specs), d.tb.specs.held(), "specs held")
}

// run applies n random operations on keys of nkeys names, checking after
// each.
func (d *tableDriver) run(rng *rand.Rand, n, nkeys int) {
	for i := range n {
		key := fmt.Sprintf("key-%d%s", rng.IntN(nkeys), padding[:rng.IntN(3)*20])
		ns := driverNS[rng.IntN(len(driverNS))]
		switch op := rng.IntN(10); {
		case op < 6:
			d.put(key, ns, 1+rng.IntN(3), rng.IntN(3), int64(100+rng.IntN(100)))
		case op < 8:
			d.removeNS(key, ns)
		case op < 9:
			d.removeKey(key)
		default:
			d.sweep(int64(100 + rng.IntN(100)))
		}
		if i%7 == 0 || n < 1000 {
			d.check()
		}
	}
	d.check()
}

const padding = "0123456789abcdefghij0123456789abcdefghij"

// TestTableMatchesAModel: puts, removals and sweeps of buckets in several
// namespaces and under several limits, on keys that collide in the index,
// leave the shard holding what a map holds: each bucket found with its
// states, no other, and the specs held by exactly the buckets alive.
func TestTableMatchesAModel(t *testing.T) {
	for _, tags := range []uint64{1, 3, 1 << 32} {
		t.Run(fmt.Sprint("tags=", tags), func(t *testing.T) {
			d := newTableDriver(t, tags)
			rng := rand.New(rand.NewPCG(1, tags))
			d.run(rng, 3000, 300)
			// Everything refilled: the shard gives back its memory.
			d.sweep(1 << 40)
			require.Nil(t, d.s.recsMem)
			require.Nil(t, d.s.arena)
		})
	}
}

// TestTableGrowsAndShrinks: 20 000 keys in one shard grow its index, its
// records and its arena; a sweep that leaves one key in a hundred shrinks
// them; the arena is compacted once deleted keys outweigh the live ones.
func TestTableGrowsAndShrinks(t *testing.T) {
	d := newTableDriver(t, 1<<32)
	const n = 20_000
	for i := range n {
		fullAt := int64(100)
		if i%100 == 0 {
			fullAt = 200
		}
		d.put(fmt.Sprint("k", i), driverNS[i%3], 1, 0, fullAt)
	}
	d.check()
	big := len(d.s.index) + len(d.s.recsMem) + len(d.s.arena)
	assert.GreaterOrEqual(t, len(d.s.index)*maxLoad, n*8, "the index at most 3/4 full")
	d.sweep(150)
	d.check()
	small := len(d.s.index)*8 + len(d.s.recsMem) + len(d.s.arena)
	assert.Less(t, small*20, big, "shrunk: %d bytes, from %d", small, big)
	// Churn: keys come and go, the arena stays bounded.
	for i := range 10 * n {
		d.put(fmt.Sprint("churn", i), CellNS, 1, 0, 300)
		d.removeKey(fmt.Sprint("churn", i))
	}
	d.check()
	assert.LessOrEqual(t, len(d.s.arena), 64<<10, "compacted")
}

func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("put put put remove sweep"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		d := newTableDriver(t, 2)
		for i := 0; i+2 < len(ops); i += 3 {
			key := fmt.Sprint("k", ops[i]%32)
			ns := driverNS[int(ops[i+1])%len(driverNS)]
			switch ops[i+2] % 8 {
			case 0, 1, 2, 3:
				d.put(key, ns, 1+int(ops[i+2]/8)%3, int(ops[i+1]/4)%2, int64(100+ops[i+2]))
			case 4, 5:
				d.removeNS(key, ns)
			case 6:
				d.removeKey(key)
			case 7:
				d.sweep(int64(100 + ops[i+1]))
			}
		}
		d.check()
	})
}

// TestSpecsAreReused: buckets under ever new limits do not grow the specs
// for ever; an id freed by its last bucket is handed out again.
func TestSpecsAreReused(t *testing.T) {
	sp := newSpecs()
	var kb []byte
	var id0 uint32
	for i := range 10_000 {
		var id uint32
		id, kb = sp.intern(CellNS, driverLimits(1, i), kb)
		if i == 0 {
			id0 = id
		}
		require.Equal(t, id0, id, "the freed id, again")
		sp.release(id)
	}
	assert.Zero(t, sp.held())
	a, kb := sp.intern(CellNS, driverLimits(2, 0), kb)
	b, _ := sp.intern(CellNS, driverLimits(2, 0), kb)
	require.Equal(t, a, b, "one spec for the same limits")
	sp.release(a)
	assert.Equal(t, 1, sp.held(), "held by one more")
	assert.Equal(t, driverLimits(2, 0), sp.get(b).limits)
}

// TestNoHeapObjectsPerBucket: new buckets cost no Go heap objects: the
// table holds them outside the heap, so the garbage collector has nothing
// to scan, however many there are.
func TestNoHeapObjectsPerBucket(t *testing.T) {
	db, err := Open(t.TempDir()+"/b.db", Options{SyncInterval: time.Hour})
	require.NoError(t, err)
	defer db.Close()
	limits := []bucket.Limit{{Capacity: 100 * bucket.Token, Rate: bucket.Every(time.Second)}}
	take := func(from, n int) {
		for i := from; i < from+n; i++ {
			_, err := db.Take(CellNS, fmt.Sprintf("user:%09d", i), limits, bucket.Token, nil)
			require.NoError(t, err)
		}
	}
	take(0, 10_000) // the log's buffers and the specs, once
	heapObjects := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapObjects
	}
	const n = 100_000
	before := heapObjects()
	take(10_000, n)
	after := heapObjects()
	t.Logf("heap objects: %d before, %d after %d new buckets", before, after, n)
	assert.Less(t, float64(after)-float64(before), n*0.01, "heap objects per new bucket ~ 0")

	i := 1 << 30
	allocs := testing.AllocsPerRun(10_000, func() {
		i++
		key := "user:" + fmt.Sprint(i) // the key's own allocations are counted before
		_ = key
	})
	allocsTake := testing.AllocsPerRun(10_000, func() {
		i++
		_, _ = db.Take(CellNS, "user:"+fmt.Sprint(i), limits, bucket.Token, nil)
	})
	t.Logf("allocations per take of a new key: %.2f (of which %.2f for its name)", allocsTake, allocs)
	assert.LessOrEqual(t, allocsTake-allocs, 0.05)
}

// TestHashIsStable: a key's hash, which places it in its shard and page
// on disk, is FNV-1a over the seed's 8 bytes then the key's, mixed once;
// the values were computed by the hash before its seed part was cached,
// which every file so far was written with, so an old file keeps its
// layout.
func TestHashIsStable(t *testing.T) {
	for _, c := range []struct {
		seed uint64
		key  string
		want uint64
	}{
		{0, "k", 0xe6046b3d14b35b7b},
		{0x0123456789abcdef, "k:123456", 0xd599a171bdecbacf},
		{1<<64 - 1, "user:42", 0x212915dc292e6a33},
	} {
		assert.Equal(t, c.want, newTable(c.seed).hash(c.key), "seed %#x, key %q", c.seed, c.key)
	}
}
