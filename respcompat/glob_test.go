package respcompat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// globCases are Redis's glob semantics (src/util.c stringmatchlen, and the
// KEYS cases of tests/unit/keyspace.tcl), each checked against a real
// redis-server by TestGlobAgainstRedis where one is installed.
var globCases = []struct {
	pattern, s string
	want       bool
}{
	// keyspace.tcl: KEYS with pattern, all keys, hashtags.
	{"foo*", "foo_a", true}, {"foo*", "key_x", false}, {"*", "key_x", true},
	{"{a}*", "{a}x", true}, {"{a}*", "{b}a", false}, {"*{b}*", "{b}c", true}, {"*{b}*", "{a}z", false},
	// Regression for pattern matching long nested loops.
	{"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 40), false},
	{strings.Repeat("*?", 50000), strings.Repeat("a", 50000), false},
	// Issue 9's.
	{"[ja]*", "joe", true}, {"[ja]*", "ann", true}, {"[ja]*", "bob", false},
	{"cli:[12]", "cli:1", true}, {"cli:[12]", "cli:2", true}, {"cli:[12]", "cli:3", false},
	// '?', '*'.
	{"h?llo", "hello", true}, {"h?llo", "hllo", false}, {"h*llo", "hllo", true}, {"h*llo", "heeeello", true},
	{"", "", true}, {"", "a", false}, {"a", "", false}, {"*", "", true}, {"**", "", false}, {"?", "", false},
	{"a**b", "axxb", true}, {"*a", "bab", false}, {"*a", "ba", true}, {"a*", "a", true},
	{"?", "é", false}, // a byte, not a character: é is two
	{"??", "é", true},
	// Classes, negation, ranges.
	{"h[ae]llo", "hello", true}, {"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
	{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false},
	{"h[a-b]llo", "hbllo", true}, {"h[a-b]llo", "hcllo", false}, {"h[b-a]llo", "hallo", true},
	{"[a-]", "-", false}, {"[a-]", "a", true}, {"[-a]", "-", true},
	{"[]]", "]", false}, {"[]", "]", false}, {"[", "[", false}, {"[^]", "a", true},
	{"[abc", "a", true}, {"[abc", "d", false}, {"ab[", "ab", false},
	{"[\\]]", "]", true}, {"[\\-]", "-", true}, {"[a\\-z]", "b", false}, {"[a\\-z]", "-", true},
	// Escapes.
	{"\\*", "*", true}, {"\\*", "a", false}, {"\\?", "?", true}, {"\\[a]", "[a]", true},
	{"a\\", "a\\", true}, {"a\\", "a", false}, {"\\\\", "\\", true}, {"\\a", "a", true},
	// Case.
	{"Foo", "foo", false},
}

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range globCases {
		name := tc.pattern
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		assert.Equal(t, tc.want, globMatch(tc.s, tc.pattern), "pattern %q on %q", name, tc.s)
	}
}

// TestKeysAndScanGlob: KEYS and SCAN MATCH use the glob, over the store's
// keys.
func TestKeysAndScanGlob(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	for _, k := range []string{"joe", "ann", "bob", "cli:1", "cli:2", "cli:3"} {
		rc.do("BUCKET.TAKE", k)
	}
	keys := ts.client(t).Keys(ctxT(t), "[ja]*").Val()
	assert.ElementsMatch(t, []string{"joe", "ann"}, keys)
	var got []string
	var cursor uint64
	for {
		ks, next, err := ts.client(t).Scan(ctxT(t), cursor, "cli:[12]", 100).Result()
		require.NoError(t, err)
		got = append(got, ks...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	assert.ElementsMatch(t, []string{"cli:1", "cli:2"}, got)
	assert.Equal(t, "*4\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n", rc.do("CONFIG", "GET", "maxmemor[y]*"))
}

// TestGlobAgainstRedis compares globMatch with a real redis-server's KEYS on
// the table's cases and on random patterns and keys over an alphabet of
// the glob's special bytes. redis-server is an optional oracle (CI
// installs redis-tools, which has only redis-cli): without it the test
// skips; the table above is what always runs.
func TestGlobAgainstRedis(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: no oracle to compare with")
	}
	sock := filepath.Join(t.TempDir(), "redis.sock")
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, bin, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no")
	require.NoError(t, srv.Start())
	t.Cleanup(func() { cancel(); _ = srv.Wait() })
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	t.Cleanup(func() { rdb.Close() })
	ctxT := ctxT(t)
	for rdb.Ping(ctxT).Err() != nil {
		require.NoError(t, ctxT.Err(), "redis-server did not start")
		time.Sleep(20 * time.Millisecond) // polling for the server's start
	}

	type pair struct{ pattern, s string }
	var pairs []pair
	for _, tc := range globCases {
		if tc.s != "" && len(tc.pattern) < 1000 { // KEYS cannot hold an empty key
			pairs = append(pairs, pair{tc.pattern, tc.s})
		}
	}
	rng := rand.New(rand.NewPCG(9, 9))
	const alphabet = "ab*?[]^-\\"
	gen := func(n int) string {
		b := make([]byte, 1+rng.IntN(n))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 3000 {
		pairs = append(pairs, pair{gen(7), gen(5)})
	}
	for _, p := range pairs {
		require.NoError(t, rdb.FlushAll(ctxT).Err())
		require.NoError(t, rdb.Set(ctxT, p.s, "1", 0).Err())
		keys, err := rdb.Keys(ctxT, p.pattern).Result()
		require.NoError(t, err)
		assert.Equal(t, len(keys) == 1, globMatch(p.s, p.pattern), "pattern %q on %q", p.pattern, p.s)
	}
}

// FuzzGlob: globMatch never panics, an escaped copy of a string matches it
// exactly, and '*' around it matches it inside any string.
func FuzzGlob(f *testing.F) {
	for _, tc := range globCases {
		if len(tc.pattern) < 200 {
			f.Add(tc.pattern, tc.s)
		}
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 4096 || len(s) > 4096 {
			return
		}
		globMatch(s, pattern)
		var esc strings.Builder
		for i := range len(s) {
			esc.WriteByte('\\')
			esc.WriteByte(s[i])
		}
		if !globMatch(s, esc.String()) {
			t.Fatalf("%q does not match its escaped self", s)
		}
		if !globMatch(pattern+s+"x", "*"+esc.String()+"*") {
			t.Fatal(fmt.Sprintf("*%q* does not match a string holding it", s))
		}
	})
}
