package redisstore

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

var testNames = newNames(DefaultPrefix)

// FuzzParseStored: what is read back from Redis (a limit's spec, an
// override's field and value, a key index's name) is parsed without a
// panic, whatever another program wrote there; and a spec the store
// writes parses back to its limit.
func FuzzParseStored(f *testing.F) {
	f.Add("5000000:1:3000:1000000:3000000000:1/3s", "4:free", "joe", "bucketd-ns:{~}x}")
	f.Add("", "x", "", "bucketd-ns:{")
	f.Add("1:2:3", "99999999999999999999:", "k", "bucketd-ns:{}")
	f.Fuzz(func(t *testing.T, sp, field, value, index string) {
		if l, err := parseSpec(sp); err == nil && l.Validate() == nil {
			if s, err := spec(l); err == nil {
				back, err := parseSpec(s)
				require.NoError(t, err)
				require.Equal(t, l, back)
			}
		}
		_, _ = parseOverride(field, value)
		if k, ok := testNames.keyOf(index); ok && k != "" {
			require.Equal(t, index, testNames.indexKey(k), "a key index names one key")
		}
		_, _ = clusterOptions("redis+cluster://" + index)
		if !strings.ContainsAny(value, ":/@?#") {
			pw := "Q" + value + "Q"
			require.NotContains(t, Redact("redis://u:"+pw+"@h:1"), pw, "the password is hidden")
		}
	})
}

// TestKeysRoundTrip: every key, however odd, names its index and buckets
// with one non-empty hash tag, and is read back from its index.
func TestKeysRoundTrip(t *testing.T) {
	for _, k := range []string{"joe", "}", "}x", "~", "~~a", "a}b", "{a}", "a:b", " "} {
		idx := testNames.indexKey(k)
		got, ok := testNames.keyOf(idx)
		require.True(t, ok, k)
		require.Equal(t, k, got)
		tagOf := func(s string) string {
			i := strings.IndexByte(s, '{')
			j := strings.IndexByte(s[i+1:], '}')
			return s[i+1 : i+1+j]
		}
		b := testNames.bucketKey(storage.PolicyNS("free"), k)
		require.NotEmpty(t, tagOf(idx), k)
		require.Equal(t, tagOf(idx), tagOf(b), "%q: one slot for the index and the bucket", k)
		require.True(t, strings.HasPrefix(b, testNames.bucketsOf(idx)), k)
	}
	_, err := spec(bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: 7 * bucket.Token, Per: 13_000_000_001}})
	require.ErrorIs(t, err, bucket.ErrInvalid, "beyond the exact range")
}
