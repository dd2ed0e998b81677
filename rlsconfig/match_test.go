package rlsconfig_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/rlsconfig"
)

// load parses the files of testdata/ratelimit named.
func load(t *testing.T, names ...string) *rlsconfig.Config {
	t.Helper()
	var files []rlsconfig.File
	for _, n := range names {
		path := filepath.Join("testdata", "ratelimit", n)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		files = append(files, rlsconfig.File{Name: path, Data: data})
	}
	c, err := rlsconfig.Parse(files...)
	require.NoError(t, err)
	return c
}

// e builds entries from key, value pairs.
func e(kv ...string) []rlsconfig.Entry {
	out := make([]rlsconfig.Entry, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, rlsconfig.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

type matchCase struct {
	name    string
	domain  string
	entries []rlsconfig.Entry
	rpu     uint32 // 0 with noLimit
	unit    rlsconfig.Unit
	noLimit bool
	key     string // the bucket key, when not ""
	check   func(t *testing.T, r *rlsconfig.Rule)
}

func runMatch(t *testing.T, c *rlsconfig.Config, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := c.Match(tc.domain, tc.entries)
			if tc.noLimit {
				require.Nil(t, m.Rule, "matched %+v", m.Rule)
				require.Empty(t, m.Key)
				return
			}
			require.NotNil(t, m.Rule)
			require.Equal(t, tc.rpu, m.Rule.RequestsPerUnit)
			require.Equal(t, tc.unit, m.Rule.Unit)
			if tc.key != "" {
				require.Equal(t, tc.key, m.Key)
			}
			if tc.check != nil {
				tc.check(t, m.Rule)
			}
		})
	}
}

// TestMatchBasic follows envoyproxy/ratelimit's TestBasicConfig on its own
// basic_config.yaml: most specific wins, a key without a value matches any
// value, depth must match, a key/value without a limit whitelists.
func TestMatchBasic(t *testing.T) {
	c := load(t, "basic_config.yaml")
	require.Equal(t, []string{"test-domain"}, c.Domains())
	runMatch(t, c, []matchCase{
		{name: "unknown domain", domain: "foo_domain", entries: e("key1", "value1"), noLimit: true},
		{name: "no entries", domain: "test-domain", noLimit: true},
		{name: "unknown value, no default", domain: "test-domain", entries: e("key1", "something"), noLimit: true},
		{name: "placeholder without limit", domain: "test-domain", entries: e("key1", "value1"), noLimit: true},
		{name: "deeper than the file", domain: "test-domain", entries: e("key2", "value2", "subkey", "subvalue"), noLimit: true},
		{name: "nested, unknown value", domain: "test-domain", entries: e("key5", "value5", "subkey5", "subvalue"), noLimit: true},
		{name: "nested wildcard value", domain: "test-domain", entries: e("key1", "value1", "subkey1", "something"),
			rpu: 5, unit: rlsconfig.Second, key: "key1_value1.subkey1_something",
			check: func(t *testing.T, r *rlsconfig.Rule) { require.Equal(t, "key1_value1.subkey1", r.Path) }},
		{name: "nested most specific wins", domain: "test-domain", entries: e("key1", "value1", "subkey1", "subvalue1"),
			rpu: 10, unit: rlsconfig.Second, key: "key1_value1.subkey1_subvalue1"},
		{name: "any value", domain: "test-domain", entries: e("key2", "something"), rpu: 20, unit: rlsconfig.Minute},
		{name: "value beats key", domain: "test-domain", entries: e("key2", "value2"), rpu: 30, unit: rlsconfig.Minute},
		{name: "whitelisted value", domain: "test-domain", entries: e("key2", "value3"), noLimit: true},
		{name: "hour", domain: "test-domain", entries: e("key3", "foo"), rpu: 1, unit: rlsconfig.Hour},
		{name: "named", domain: "test-domain", entries: e("key4", "foo"), rpu: 1, unit: rlsconfig.Day,
			check: func(t *testing.T, r *rlsconfig.Rule) { require.Equal(t, "key4_rate_limit", r.Name) }},
		{name: "limit at both levels, one entry", domain: "test-domain", entries: e("key5", "value5"), rpu: 15, unit: rlsconfig.Day},
		{name: "limit at both levels, two entries", domain: "test-domain", entries: e("key5", "value5", "subkey5", "subvalue5"), rpu: 25, unit: rlsconfig.Day},
		{name: "detailed metric", domain: "test-domain", entries: e("key7", "unspecified_value"), rpu: 70, unit: rlsconfig.Minute,
			check: func(t *testing.T, r *rlsconfig.Rule) { require.True(t, r.DetailedMetric) }},
		{name: "empty value matches the key", domain: "test-domain", entries: e("key3", ""), rpu: 1, unit: rlsconfig.Hour, key: "key3"},
	})
	m := c.Match("test-domain", e("key6", "foo"))
	require.NotNil(t, m.Rule)
	require.True(t, m.Rule.Unlimited)
}

// TestMatchWildcard follows envoyproxy/ratelimit's TestWildcardConfig.
func TestMatchWildcard(t *testing.T) {
	c := load(t, "wildcard.yaml")
	runMatch(t, c, []matchCase{
		{name: "trailing", domain: "test-domain", entries: e("wild", "foo1"), rpu: 20, unit: rlsconfig.Minute, key: "wild_foo1"},
		{name: "trailing, empty rest", domain: "test-domain", entries: e("wild", "foo"), rpu: 20, unit: rlsconfig.Minute},
		{name: "trailing, no prefix", domain: "test-domain", entries: e("wild", "bar"), noLimit: true},
		{name: "no wildcard", domain: "test-domain", entries: e("noWild", "foo1"), noLimit: true},
		{name: "no value", domain: "test-domain", entries: e("noVal", "foo1"), rpu: 20, unit: rlsconfig.Minute},
		{name: "middle", domain: "test-domain", entries: e("midWild", "barxyzb"), rpu: 20, unit: rlsconfig.Minute},
		{name: "middle, wrong suffix", domain: "test-domain", entries: e("midWild", "barxyzc"), noLimit: true},
		{name: "multiple", domain: "test-domain", entries: e("multiWild", "foo1bar2baz"), rpu: 10, unit: rlsconfig.Minute},
		{name: "multiple, out of order", domain: "test-domain", entries: e("multiWild", "foobazbar"), noLimit: true},
		{name: "nested", domain: "test-domain", entries: e("nestedWild", "val1", "wild", "goo2"), rpu: 20, unit: rlsconfig.Minute},
		{name: "nested, no match", domain: "test-domain", entries: e("nestedWild", "val1", "wild", "foo2"), noLimit: true},
	})
}

// TestMatchShareThreshold: values a share_threshold wildcard matches share
// one bucket key; without it each value has its own.
func TestMatchShareThreshold(t *testing.T) {
	c, err := rlsconfig.Load(filepath.Join("..", "testdata", "rls", "readme"))
	require.NoError(t, err)
	a := c.Match("example11", e("files", "files/a.pdf"))
	b := c.Match("example11", e("files", "files/b.csv"))
	require.NotNil(t, a.Rule)
	require.Equal(t, "files_files/*", a.Key)
	require.Equal(t, a.Key, b.Key)
	x := c.Match("example11", e("files_no_share", "files_no_share/a.pdf"))
	y := c.Match("example11", e("files_no_share", "files_no_share/b.csv"))
	require.NotNil(t, x.Rule)
	require.NotEqual(t, x.Key, y.Key)
}

// TestMatchReadmeExamples matches the descriptor examples of
// envoyproxy/ratelimit's README as it describes them.
func TestMatchReadmeExamples(t *testing.T) {
	c, err := rlsconfig.Load(filepath.Join("..", "testdata", "rls", "readme"))
	require.NoError(t, err)
	require.Len(t, c.Domains(), 11)
	runMatch(t, c, []matchCase{
		{name: "ex1", domain: "mongo_cps", entries: e("database", "users"), rpu: 500, unit: rlsconfig.Second},
		{name: "ex1 other value", domain: "mongo_cps", entries: e("database", "other"), noLimit: true},
		{name: "ex2 nested", domain: "messaging", entries: e("message_type", "marketing", "to_number", "2061111111"), rpu: 5, unit: rlsconfig.Day,
			key: "message_type_marketing.to_number_2061111111"},
		{name: "ex2 top", domain: "messaging", entries: e("to_number", "2061111111"), rpu: 100, unit: rlsconfig.Day, key: "to_number_2061111111"},
		{name: "ex3 any ip", domain: "edge_proxy_per_ip", entries: e("remote_address", "50.0.0.1"), rpu: 10, unit: rlsconfig.Second},
		{name: "ex3 blacklisted", domain: "edge_proxy_per_ip", entries: e("remote_address", "50.0.0.5"), rpu: 0, unit: rlsconfig.Second},
		{name: "ex4 depth", domain: "example4", entries: e("key", "value", "subkey", "subvalue"), rpu: 300, unit: rlsconfig.Second},
		{name: "ex4 too short", domain: "example4", entries: e("key", "value"), noLimit: true},
		{name: "ex6 shadow", domain: "example6", entries: e("service", "auth-service", "user", "user-a"), rpu: 10, unit: rlsconfig.Second,
			check: func(t *testing.T, r *rlsconfig.Rule) { require.True(t, r.ShadowMode) }},
		{name: "ex6 not shadow", domain: "example6", entries: e("service", "auth-service", "user", "user-b"), rpu: 20, unit: rlsconfig.Second,
			check: func(t *testing.T, r *rlsconfig.Rule) { require.False(t, r.ShadowMode) }},
		{name: "ex7 named", domain: "example7", entries: e("key_1", "value_1", "user", "bkthomps"), rpu: 5, unit: rlsconfig.Second,
			check: func(t *testing.T, r *rlsconfig.Rule) { require.Equal(t, "specific_limit", r.Name) }},
		{name: "ex7 replaces", domain: "example7", entries: e("key_2", "value_2", "user", "bkthomps"), rpu: 10, unit: rlsconfig.Second,
			check: func(t *testing.T, r *rlsconfig.Rule) { require.Equal(t, []string{"specific_limit"}, r.Replaces) }},
		{name: "ex8 any", domain: "example8", entries: e("key1", "x"), rpu: 10, unit: rlsconfig.Minute},
		{name: "ex8 specific", domain: "example8", entries: e("key1", "value1"), rpu: 20, unit: rlsconfig.Minute},
		{name: "ex9 middle", domain: "example9", entries: e("path", "/api/123/action"), rpu: 20, unit: rlsconfig.Minute},
		{name: "ex9 middle other", domain: "example9", entries: e("path", "/api/123/other"), noLimit: true},
		{name: "ex9 multi", domain: "example9", entries: e("route", "/api/v1/resource/123/action"), rpu: 20, unit: rlsconfig.Minute},
		{name: "ex10 three levels", domain: "example10", entries: e("route", "api", "http_method", "GET", "subject_id", "123"), rpu: 60, unit: rlsconfig.Minute},
	})
	m := c.Match("internal", e("ldap", "x"))
	require.True(t, m.Rule.Unlimited)
}
