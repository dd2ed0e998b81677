package e2e_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinaryCrashMatrix kills the real binary with SIGKILL under load, at
// the moments the write-ahead log makes delicate (a group commit, a
// checkpoint, a log switch), and restarts it on the same data file. Every
// take answered before the kill must be there after the restart (under
// --sync interval: every take answered more than the bound before it), and
// no take that was never sent may be.
//
// What a SIGKILL can prove: it kills the process, not the machine, so the
// bytes that reached the kernel survive it, synced or not. These tests
// prove that a take is answered only once its record has left the process,
// and that recovery (the checkpoint, then the log after it) is right
// whatever the moment of the kill; that the record is also fdatasync'ed
// before the answer is for storage/wal's tests with a failing file.
//
// Why each subtest can fail for the reason its name gives:
//   - "group commit" runs with --sync-interval 1h, so no timer ever writes
//     the log: wal.Log.Append only buffers a record in memory, and only the
//     group commit that the take waits for (wal.Log.Sync) writes it. A take
//     answered before its group was written would still be in memory at
//     the kill, and the restart would find fewer takes than were answered
//     (none at all, if answers never waited; that mutant was run).
//   - "during a checkpoint / log switch" kills, in every other round, at
//     the first log switch it sees (a new segment in <data>.wal): the
//     checkpoint's bbolt transaction and the removal of the old segments
//     come right after. Just before it waits for that switch, it takes a
//     "cold" key, never taken again: its only record is in the segment
//     that the switch retires, so it survives only if the checkpoint wrote
//     its page, recorded the right sequence number and removed no segment
//     before it was durable; cold keys are checked exactly, in every
//     round. (A key taken all the time would hide such a loss: each record
//     holds its bucket's whole state, so its next record restores it.)
//     Mutants of storage/flush.go that were run against it: answers that
//     do not wait for the group commit, a checkpoint that writes no page,
//     and one that removes the old segments before its transaction; each
//     made it fail.
//   - "interval mode with checkpoints" kills at a log switch too, with a
//     checkpoint due at nearly every tick, and checks the bound of
//     TestBinarySIGKILLIntervalKeepsTakesOlderThanTheBound.
func TestBinaryCrashMatrix(t *testing.T) {
	t.Run("group commit", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "bucketd.db")
		args := crashArgs(data, "--sync", "always", "--sync-interval", "1h")
		keys := []string{"a", "b", "c", "d"}
		p := startBinary(t, args...)
		o := crashRound(t, p, crashLoad{walDir: data + ".wal", keys: keys, clients: 32, delay: randomDelay(500 * time.Millisecond)})
		require.Positive(t, sum(o.answered), "no take was answered before the kill: the test proves nothing")
		require.Zero(t, o.switches, "a checkpoint ran: the takes were not all carried by group commits alone")

		p = restart(t, args)
		for i, k := range keys {
			got := taken(t, p, k)
			assert.GreaterOrEqual(t, got, o.answered[i], "key %s: a take answered 200 before SIGKILL was lost", k)
			assert.LessOrEqual(t, got, o.sent[i], "key %s: more takes than were sent", k)
			t.Logf("key %s: %d sent, %d answered, %d after the restart", k, o.sent[i], o.answered[i], got)
		}
		assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
	})

	t.Run("during a checkpoint / log switch", func(t *testing.T) {
		const rounds, coldTakes = 8, 3
		data := filepath.Join(t.TempDir(), "bucketd.db")
		walDir := data + ".wal"
		// Under --sync always the flusher still wakes every
		// --sync-interval to see whether a checkpoint is due: 10ms makes
		// one every ~1000 takes (64 KiB of records).
		args := crashArgs(data, "--sync", "always", "--sync-interval", "10ms", "--max-log-bytes", "65536")
		hot := []string{"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7"}
		base := make([]int, len(hot)) // each hot key's takes, as read after the last restart
		cold := map[string]int{}      // takes of each cold key, all answered
		switches := 0
		p := startBinary(t, args...)
		for r := range rounds {
			key := fmt.Sprintf("cold%d", r)
			o := crashRound(t, p, crashLoad{walDir: walDir, keys: hot, clients: 32,
				delay: randomDelay(300 * time.Millisecond), atSwitch: r%2 == 1, cold: key, coldTakes: coldTakes})
			cold[key] = coldTakes
			switches += o.switches

			p = restart(t, args)
			for i, k := range hot {
				got := taken(t, p, k)
				assert.GreaterOrEqual(t, got, base[i]+o.answered[i], "round %d, key %s: a take answered 200 before SIGKILL was lost", r, k)
				assert.LessOrEqual(t, got, base[i]+o.sent[i], "round %d, key %s: more takes than were sent", r, k)
				base[i] = got
			}
			for k, n := range cold {
				assert.Equal(t, n, taken(t, p, k), "round %d, cold key %s: its takes were lost (or invented) across a checkpoint", r, k)
			}
			segs := fewSegments(t, walDir, 2)
			assert.LessOrEqual(t, len(segs), 2, "round %d: the log keeps old segments: %v", r, segs)
			t.Logf("round %d (kill %s, after %v): %d takes sent, %d answered, %d after the restart; %d log switches; segments at the kill %v, after the restart %v",
				r, o.how, o.ran.Round(time.Millisecond), sum(o.sent), sum(o.answered), sum(base), o.switches, o.atKill, segs)
		}
		require.Positive(t, switches, "no log switch during %d rounds: no kill came near a checkpoint", rounds)
		assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
		segs := segments(t, walDir)
		assert.Len(t, segs, 1, "after a clean stop the log is one segment: %v", segs)
	})

	t.Run("interval mode with checkpoints", func(t *testing.T) {
		const (
			interval = 100 * time.Millisecond
			// margin: up to one interval until the flush that writes a
			// take starts, and two more for it (and a checkpoint) to
			// write on a loaded machine.
			margin = 3 * interval
		)
		data := filepath.Join(t.TempDir(), "bucketd.db")
		args := crashArgs(data, "--sync", "interval", "--sync-interval", interval.String(), "--max-log-bytes", "65536")
		keys := []string{"a", "b", "c", "d"}
		p := startBinary(t, args...)
		o := crashRound(t, p, crashLoad{walDir: data + ".wal", keys: keys, clients: 32,
			delay: randomDelay(700 * time.Millisecond), atSwitch: true})

		early := make([]int, len(keys)) // takes answered more than margin before the kill
		for i := range keys {
			for _, at := range o.answeredAt[i] {
				if o.killedAt.Sub(at) > margin {
					early[i]++
				}
			}
		}
		require.Positive(t, sum(early), "no take was answered more than %v before the kill: the test proves nothing", margin)
		require.Positive(t, o.switches, "no log switch during the run: no checkpoint came near the kill")

		p = restart(t, args)
		for i, k := range keys {
			got := taken(t, p, k)
			assert.GreaterOrEqual(t, got, early[i], "key %s: a take answered more than %v (--sync-interval %v) before SIGKILL was lost", k, margin, interval)
			assert.LessOrEqual(t, got, o.sent[i], "key %s: more takes than were sent", k)
			t.Logf("key %s: %d sent, %d answered, %d of them more than %v before the kill (%s), %d after the restart",
				k, o.sent[i], o.answered[i], early[i], margin, o.how, got)
		}
		assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
	})
}

// crashCapacity is the capacity of every bucket of the crash tests: more
// takes than a run makes, so that every take is answered 200. At 1 token
// in 1000 days, a bucket earns less than a token during a test, so the
// whole part of its remaining tokens counts the takes it kept. After
// about 110 takes a bucket's time until full passes time.Duration's range
// (292 years), so the tests also carry saturated instants through the log,
// a checkpoint and a restart.
const crashCapacity = 1_000_000

// crashArgs returns the flags of a crash test on data, with extra.
func crashArgs(data string, extra ...string) []string {
	return append([]string{"--data", data, "--capacity", strconv.Itoa(crashCapacity), "--rate", "1/1000d", "--resp-addr", ""}, extra...)
}

// randomDelay returns a duration in [d, 3d): when a kill comes.
func randomDelay(d time.Duration) time.Duration { return d + rand.N(2*d) }

// crashLoad describes a round of crashRound.
type crashLoad struct {
	walDir   string   // the log's directory, watched for switches
	keys     []string // client c takes keys[c%len(keys)]
	clients  int      // concurrent HTTP clients, each taking one request at a time
	delay    time.Duration
	atSwitch bool // kill at the first log switch after delay, not at delay
	// cold is a key taken coldTakes times, one at a time, once the delay
	// is over: just before the kill, or before the log switch it waits
	// for. Its record is then in the segment that the switch retires.
	cold      string
	coldTakes int
}

// crashOutcome is what the clients of a round saw, per key (as in
// crashLoad.keys).
type crashOutcome struct {
	sent       []int         // takes sent
	answered   []int         // takes answered 200
	answeredAt [][]time.Time // when each 200 came
	killedAt   time.Time     // just before SIGKILL was sent
	how        string        // how the kill was timed
	switches   int           // new segments seen during the round
	atKill     []string      // the log's segments just before the kill
	ran        time.Duration // from the start of the clients to the kill
}

// maxTakesPerClient bounds a round: far more than a client makes in the
// few seconds before the kill, and few enough that no bucket runs out.
const maxTakesPerClient = 20_000

// crashRound runs l's clients against p, kills p with SIGKILL as l says,
// waits for the process and the clients to end, and returns what the
// clients saw. It fails the test if a take is answered anything but 200,
// or fails before the kill.
//
// A client counts a take as sent before it sends it, and as answered once
// it has read a 200, so for each key the takes that the restart finds must
// lie between answered and sent. Go's transport replays a GET only on a
// reused connection that broke before any byte of an answer came, which
// here happens only once the process is dead: the replay cannot connect,
// so a sent take reaches the server at most once.
func crashRound(t *testing.T, p *proc, l crashLoad) crashOutcome {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: l.clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var (
		dead    atomic.Bool // set just before SIGKILL is sent
		wg      sync.WaitGroup
		sent    = make([]int, l.clients)
		at      = make([][]time.Time, l.clients)
		failure = make([]error, l.clients)
	)
	for c := range l.clients {
		url := "http://" + p.httpAddr + "/" + l.keys[c%len(l.keys)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range maxTakesPerClient {
				sent[c]++
				resp, err := hc.Get(url)
				if err != nil {
					if !dead.Load() {
						failure[c] = err
					}
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failure[c] = fmt.Errorf("take answered %d", resp.StatusCode)
					return
				}
				if err != nil { // the status came, the body did not
					if !dead.Load() {
						failure[c] = err
					}
					return
				}
				at[c] = append(at[c], time.Now())
			}
		}()
	}

	o := crashOutcome{how: "at a random moment"}
	w := newSegmentWatch(t, l.walDir)
	began := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(l.delay)
	for time.Now().Before(deadline) { // count switches until the delay is over
		w.look(t)
		<-tick.C
	}
	for range l.coldTakes {
		resp, err := hc.Get("http://" + p.httpAddr + "/" + l.cold)
		require.NoError(t, err, "cold key %s", l.cold)
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.NoError(t, err, "cold key %s", l.cold)
		require.Equal(t, 200, resp.StatusCode, "cold key %s", l.cold)
	}
	if l.atSwitch {
		o.how = "at a log switch"
		limit := time.Now().Add(2 * time.Second)
		for !w.look(t) {
			if time.Now().After(limit) {
				o.how = "2s after the delay: no log switch came"
				break
			}
		}
	}
	o.atKill = w.last
	o.killedAt = time.Now()
	o.ran = o.killedAt.Sub(began)
	dead.Store(true)
	require.Equal(t, -1, p.stop(t, syscall.SIGKILL))
	wg.Wait()
	o.switches = w.switches

	o.sent = make([]int, len(l.keys))
	o.answered = make([]int, len(l.keys))
	o.answeredAt = make([][]time.Time, len(l.keys))
	for c := range l.clients {
		require.NoError(t, failure[c], "client %d, before the kill", c)
		k := c % len(l.keys)
		o.sent[k] += sent[c]
		o.answered[k] += len(at[c])
		o.answeredAt[k] = append(o.answeredAt[k], at[c]...)
	}
	return o
}

// segmentWatch follows the segments of a log directory.
type segmentWatch struct {
	dir      string
	seen     map[string]bool
	last     []string // the segments at the last look
	switches int      // segments that appeared after the first look
}

func newSegmentWatch(t *testing.T, dir string) *segmentWatch {
	w := &segmentWatch{dir: dir, seen: map[string]bool{}}
	w.look(t)
	w.switches = 0
	return w
}

// look lists the segments, and reports whether one appeared since the
// last look.
func (w *segmentWatch) look(t *testing.T) bool {
	w.last = segments(t, w.dir)
	appeared := false
	for _, s := range w.last {
		if !w.seen[s] {
			w.seen[s] = true
			w.switches++
			appeared = true
		}
	}
	return appeared
}

// segments returns the names of the segment files in the log directory
// dir (not the files a cut tail is kept aside in, nor temporary ones),
// sorted. The directory must exist.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err, "the write-ahead log's directory")
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".wal") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// fewSegments waits up to 5 s for the log directory dir to hold at most
// n segments, and returns the last list it saw. A checkpoint may be under
// way (one is due at once after a restart that replayed more than
// --max-log-bytes), between the creation of its segment and the removal
// of the old ones.
func fewSegments(t *testing.T, dir string, n int) []string {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(5 * time.Second)
	segs := segments(t, dir)
	for len(segs) > n && time.Now().Before(deadline) {
		<-tick.C
		segs = segments(t, dir)
	}
	return segs
}

// restartBound is how long a restart on a crashed file may take until the
// start line: its state is a few buckets and at most a few MB of log.
const restartBound = 5 * time.Second

// restart starts bucketd with args after a crash, and checks that it
// started within restartBound and logged no error on the way.
func restart(t *testing.T, args []string) *proc {
	t.Helper()
	start := time.Now()
	p := startBinaryIn(t, t.TempDir(), nil, args...)
	took := time.Since(start)
	assert.Less(t, took, restartBound, "the restart after SIGKILL was slow")
	for _, line := range p.log.seen() {
		assert.NotContains(t, line, "level=ERROR", "the restart after SIGKILL logged an error")
	}
	return p
}

// seen returns a copy of the lines that wait has looked at.
func (l *logTail) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines[:l.next])
}

// taken returns the number of takes key's bucket holds: crashCapacity
// less the whole part of its remaining tokens.
func taken(t *testing.T, p *proc, key string) int {
	t.Helper()
	remaining := peek(t, p.httpAddr, key)
	whole, _, _ := strings.Cut(remaining, ".")
	left, err := strconv.Atoi(whole)
	require.NoError(t, err, remaining)
	return crashCapacity - left
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
