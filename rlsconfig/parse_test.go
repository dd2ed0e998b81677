package rlsconfig_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/rlsconfig"
)

// TestParseRatelimitFiles loads each of envoyproxy/ratelimit's own test
// files and expects what its config_test.go expects: the good ones load,
// the bad ones fail with its message, here with a file:line:column.
func TestParseRatelimitFiles(t *testing.T) {
	for _, tc := range []struct {
		files []string
		want  string // "" for valid; else a part of the error
	}{
		{[]string{"basic_config.yaml"}, ""},
		{[]string{"wildcard.yaml"}, ""},
		{[]string{"shadowmode_config.yaml"}, ""},
		{[]string{"share_threshold.yaml"}, ""},
		{[]string{"metadata.yaml"}, ""},
		{[]string{"empty_domain.yaml"}, "empty_domain.yaml:1:1: domain: want a non-empty domain"},
		{[]string{"basic_config.yaml", "duplicate_domain.yaml"}, "duplicate_domain.yaml:1:9: domain: duplicate domain \"test-domain\""},
		{[]string{"merge_domain_key1.yaml", "merge_domain_key2.yaml"}, "duplicate domain"},
		{[]string{"empty_key.yaml"}, "descriptor has an empty key"},
		{[]string{"duplicate_key.yaml"}, "duplicate descriptor composite key 'key1_value1'"},
		{[]string{"bad_limit_unit.yaml"}, "bad_limit_unit.yaml:6:13: descriptors[0].rate_limit.unit: invalid rate limit unit 'foo'"},
		{[]string{"replaces_self.yaml"}, "replaces should not contain name of same descriptor"},
		{[]string{"replaces_empty.yaml"}, "should not have an empty replaces entry"},
		{[]string{"bad_yaml.yaml"}, "bad_yaml.yaml:"},
		{[]string{"misspelled_key.yaml"}, "misspelled_key.yaml:5:5: descriptors[0].ratelimit: config error, unknown key 'ratelimit'"},
		{[]string{"misspelled_key2.yaml"}, "unknown key 'requestsperunit'"},
		{[]string{"non_string_key.yaml"}, "unknown key '0.25'"},
		{[]string{"non_map_list.yaml"}, "non_map_list.yaml:3:5: descriptors[0]: want a mapping, not a value"},
		{[]string{"unlimited_with_unit.yaml"}, "should not specify rate limit unit when unlimited"},
	} {
		t.Run(strings.Join(tc.files, "+"), func(t *testing.T) {
			var files []rlsconfig.File
			for _, n := range tc.files {
				p := filepath.Join("testdata", "ratelimit", n)
				data, err := os.ReadFile(p)
				require.NoError(t, err)
				files = append(files, rlsconfig.File{Name: p, Data: data})
			}
			c, err := rlsconfig.Parse(files...)
			if tc.want == "" {
				require.NoError(t, err)
				require.NotZero(t, c.Rules())
				return
			}
			require.Error(t, err)
			require.Nil(t, c)
			require.ErrorIs(t, err, bucket.ErrInvalid)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestParseProblems checks what the format's own tests do not: units,
// numbers, types, and that every problem is reported with its place.
func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"all units", "domain: d\ndescriptors:\n" +
			"  - {key: a, rate_limit: {unit: second, requests_per_unit: 1}}\n" +
			"  - {key: b, rate_limit: {unit: MINUTE, requests_per_unit: 1}}\n" +
			"  - {key: c, rate_limit: {unit: Hour, requests_per_unit: 1}}\n" +
			"  - {key: d, rate_limit: {unit: day, requests_per_unit: 1}}\n" +
			"  - {key: e, rate_limit: {unit: week, requests_per_unit: 1}}\n" +
			"  - {key: f, rate_limit: {unit: month, requests_per_unit: 1}}\n" +
			"  - {key: g, rate_limit: {unit: year, requests_per_unit: 4294967295}}\n" +
			"  - {key: h, rate_limit: {unit: second, requests_per_unit: 1000000000}}\n", nil},
		{"numeric value", "domain: d\ndescriptors:\n  - {key: port, value: 8080, rate_limit: {unit: second, requests_per_unit: 1}}\n", nil},
		{"empty descriptors", "domain: d\n", nil},
		{"empty file", "", []string{"f.yaml: empty file"}},
		{"two documents", "domain: d\n---\ndomain: e\n", []string{"f.yaml:2:1: a second YAML document"}},
		{"negative", "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: -1}\n",
			[]string{"f.yaml:4:51: descriptors[0].rate_limit.requests_per_unit: want a whole number"}},
		{"too big", "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 4294967296}\n",
			[]string{"requests_per_unit: want a whole number"}},
		{"beyond 10^9 a second", "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1000000001}\n",
			[]string{"f.yaml:4:17: descriptors[0].rate_limit: 1000000001 per second is beyond bucketd's range"}},
		{"missing requests", "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second}\n",
			[]string{"f.yaml:4:17: descriptors[0].rate_limit.requests_per_unit: missing"}},
		{"missing unit", "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {requests_per_unit: 3}\n",
			[]string{"descriptors[0].rate_limit.unit: invalid rate limit unit ''"}},
		{"bad bool", "domain: d\ndescriptors:\n  - key: a\n    shadow_mode: maybe\n",
			[]string{"f.yaml:4:18: descriptors[0].shadow_mode: want true or false"}},
		{"share without wildcard", "domain: d\ndescriptors:\n  - {key: a, value: b, share_threshold: true}\n",
			[]string{"share_threshold can only be used with wildcard values"}},
		{"nested problems all reported", "domain: d\ndescriptors:\n  - key: a\n    descriptors:\n      - key: b\n        rate_limit: {unit: fortnight, requests_per_unit: 1}\n      - key: ''\n",
			[]string{"f.yaml:6:28: descriptors[0].descriptors[0].rate_limit.unit: invalid rate limit unit 'fortnight'",
				"f.yaml:7:14: descriptors[0].descriptors[1].key: descriptor has an empty key"}},
		{"key given twice", "domain: d\ndomain: e\n", []string{"f.yaml:2:1: domain: given twice; first at line 1"}},
		{"descriptors not a list", "domain: d\ndescriptors: {key: a}\n", []string{"f.yaml:2:14: descriptors: want a list of descriptors, not a mapping"}},
		{"alias bomb", "domain: d\ndescriptors: &a\n  - {key: a, descriptors: *a}\n  - {key: b, descriptors: *a}\n",
			[]string{"more than"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := rlsconfig.Parse(rlsconfig.File{Name: "f.yaml", Data: []byte(tc.src)})
			if tc.want == nil {
				require.NoError(t, err)
				require.NotNil(t, c)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestLoadDirectory: only .yaml and .yml files count, dotfiles are skipped,
// and a missing directory is an error that is not bucket.ErrInvalid.
func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600))
	}
	write("a.yaml", "domain: a\ndescriptors:\n  - {key: k, rate_limit: {unit: second, requests_per_unit: 1}}\n")
	write("b.yml", "domain: b\n")
	write(".c.yaml", "not: valid\n")
	write("README", "not yaml at all: [")
	c, err := rlsconfig.Load(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, c.Domains())
	require.Equal(t, 1, c.Rules())

	_, err = rlsconfig.Load(filepath.Join(dir, "missing"))
	require.Error(t, err)
	require.False(t, errors.Is(err, bucket.ErrInvalid))
}
