package redisstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/redisstore/redistest"
)

// model is the embedded engine's bucket in Go (storage.fitStates and
// storage.apply): the maths of package bucket, which the script must match.
type model struct {
	limits []bucket.Limit
	states []bucket.State
	fullAt int64
}

func (m *model) take(ns storage.Namespace, limits []bucket.Limit, now time.Time, cost bucket.Tokens, each []bucket.Decision) bucket.Decision {
	t := now.UnixNano()
	live := m.states != nil && t < m.fullAt
	states := make([]bucket.State, len(limits))
	for i, l := range limits {
		switch {
		case !live || i >= len(m.states):
			states[i] = bucket.Full(l, now)
		default:
			states[i] = m.states[i].Refit(m.limits[i], l, now, ns.Carry())
		}
	}
	p := bucket.Policy{Limits: limits}
	var d bucket.Decision
	if cost < 0 {
		d = p.Give(states, now, -cost, each)
	} else {
		d = p.Take(states, now, cost, each)
	}
	if cost == 0 || (cost > 0 && !d.Allowed) || (cost < 0 && !live) {
		return d
	}
	m.limits, m.states, m.fullAt = limits, states, t+int64(d.ResetAfter)
	if d.ResetAfter == 0 {
		// Full: removed. (The embedded engine keeps it, unreadable since
		// its clock never goes back; Redis's may step back, and then a
		// kept full bucket would come alive at an instant before it.)
		m.states = nil
	}
	return d
}

// randLimit returns a random limit the Redis store accepts.
func randLimit(r *rand.Rand) bucket.Limit {
	pers := []time.Duration{time.Millisecond, time.Second, 3 * time.Second, time.Minute, time.Hour, 24 * time.Hour, 7 * time.Second / 3}
	for {
		var l bucket.Limit
		switch r.IntN(3) {
		case 0: // whole tokens, round periods
			l = bucket.Limit{Capacity: bucket.Tokens(1+r.IntN(1000)) * bucket.Token,
				Rate: bucket.Rate{Tokens: bucket.Tokens(1+r.IntN(100)) * bucket.Token, Per: pers[r.IntN(len(pers))]}}
		case 1: // micro-tokens and odd periods
			l = bucket.Limit{Capacity: bucket.Tokens(1 + r.Int64N(1e9)),
				Rate: bucket.Rate{Tokens: bucket.Tokens(1 + r.Int64N(1e7)), Per: time.Duration(1 + r.Int64N(int64(10*time.Second)))}}
		default: // near the bound of the range
			per := time.Duration(1 + r.Int64N(1e6))
			l = bucket.Limit{Capacity: bucket.Tokens(maxProduct / int64(per) / int64(1+r.IntN(3))),
				Rate: bucket.Rate{Tokens: 1, Per: per}}
		}
		if _, err := spec(l); err == nil {
			return l
		}
	}
}

// TestScriptMatchesBucket runs the same random sequences of takes, gives,
// peeks and instants through package bucket and through take.lua (the
// instant given), and requires identical decisions and stored states.
func TestScriptMatchesBucket(t *testing.T) {
	srv := redistest.Start(t)
	var now time.Time
	st, err := Open(srv.URL, Options{Timeout: 5 * time.Second, Now: func() time.Time { return now }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	const sequences, steps = 60, 150
	for seq := range sequences {
		ns := storage.PolicyNS("p")
		if seq%3 == 0 {
			ns = storage.CellNS // carries time across limit changes
		}
		sets := make([][]bucket.Limit, 1+int(boolInt(ns == storage.CellNS)))
		for i := range sets {
			sets[i] = make([]bucket.Limit, 1+r.IntN(3))
			for j := range sets[i] {
				sets[i][j] = randLimit(r)
			}
			if ns == storage.CellNS {
				sets[i] = sets[i][:1]
			}
		}
		key := "k" + strconv.Itoa(seq)
		m := &model{}
		now = time.Unix(1_700_000_000+int64(r.IntN(1e6)), r.Int64N(1e9))
		for step := range steps {
			limits := sets[r.IntN(len(sets))]
			w := limits[0].Window()
			switch r.IntN(6) {
			case 0:
				now = now.Add(time.Duration(r.Int64N(int64(w)/2 + 1)))
			case 1:
				now = now.Add(time.Duration(r.Int64N(1000)))
			case 2:
				now = now.Add(-time.Duration(r.Int64N(int64(time.Second)))) // Redis's clock stepped back
			default:
				now = now.Add(time.Duration(r.Int64N(int64(w)/20 + 1)))
			}
			c := limits[0].Capacity
			cost := []bucket.Tokens{0, 1, bucket.Tokens(r.Int64N(int64(c) + 1)), c, c + 1, -bucket.Tokens(r.Int64N(int64(c) + 1)), bucket.Token}[r.IntN(7)]
			wantEach := make([]bucket.Decision, len(limits))
			gotEach := make([]bucket.Decision, len(limits))
			before := fmt.Sprint(m.states, m.fullAt)
			want := m.take(ns, limits, now, cost, wantEach)
			got, err := st.Take(ns, key, limits, cost, gotEach)
			require.NoError(t, err)
			where := fmt.Sprintf("seq %d step %d: %v cost %s at %d, before %s", seq, step, limits, cost, now.UnixNano(), before)
			require.Equal(t, want, got, where)
			require.Equal(t, wantEach, gotEach, where)
			requireStored(t, st, ns, key, m, now, where)
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// requireStored compares the bucket's hash with the model's states.
func requireStored(t *testing.T, st *Store, ns storage.Namespace, key string, m *model, now time.Time, where string) {
	t.Helper()
	h, err := st.rdb.HGetAll(context.Background(), testNames.bucketKey(ns, key)).Result()
	require.NoError(t, err)
	if m.states == nil || m.fullAt <= now.UnixNano() {
		if len(h) > 0 { // a stored, full bucket may remain only until its expiry
			at, _ := strconv.ParseInt(h["full_at"], 10, 64)
			require.LessOrEqual(t, at, now.UnixNano(), "%s: a full bucket is stored as live", where)
		}
		return
	}
	require.Equal(t, strconv.FormatInt(m.fullAt, 10), h["full_at"], where)
	for i, s := range m.states {
		l := m.limits[i]
		g := int64(gcd(uint64(l.Rate.Tokens), uint64(l.Rate.Per)))
		f := strings.Fields(h["state."+strconv.Itoa(i+1)])
		require.Len(t, f, 3, where)
		rem, _ := strconv.ParseInt(f[2], 10, 64)
		require.Equal(t, []string{strconv.FormatInt(int64(s.Tokens), 10), strconv.FormatInt(s.At, 10)}, f[:2], "%s: limit %d", where, i)
		require.Equal(t, int64(s.Rem), rem*g, "%s: limit %d remainder", where, i)
	}
}
