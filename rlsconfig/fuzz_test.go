package rlsconfig_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/rlsconfig"
)

// FuzzParse checks that any input is either a valid configuration, whose
// matching never panics, or an *Error with at least one problem, each with
// a message and a sane position; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("domain: d\ndescriptors:\n  - key: a\n    value: b*c\n    share_threshold: true\n    rate_limit: {unit: second, requests_per_unit: 2, name: n, replaces: [{name: m}]}\n    descriptors:\n      - key: x\n        rate_limit: {unlimited: true}\n"), "a", "bxc")
	f.Add([]byte(""), "", "")
	f.Add([]byte("domain: d\ndescriptors: &a\n  - {key: a, descriptors: *a}\n"), "a", "")
	f.Add([]byte("domain: [\n"), "k", "v")
	f.Add([]byte("domain: d\ndescriptors:\n  - {key: '*', value: '*', rate_limit: {unit: day, requests_per_unit: 0}}\n"), "*", "")
	f.Fuzz(func(t *testing.T, data []byte, key, value string) {
		c, err := rlsconfig.Parse(rlsconfig.File{Name: "f.yaml", Data: data})
		if err != nil {
			var ce *rlsconfig.Error
			require.True(t, errors.As(err, &ce), "%T: %v", err, err)
			require.NotEmpty(t, ce.Problems)
			require.Nil(t, c)
			for _, p := range ce.Problems {
				require.NotEmpty(t, p.Msg)
				require.GreaterOrEqual(t, p.Line, 0)
				require.GreaterOrEqual(t, p.Column, 0)
			}
			return
		}
		for _, d := range c.Domains() {
			for _, entries := range [][]rlsconfig.Entry{
				{{Key: key, Value: value}},
				{{Key: key, Value: value}, {Key: value, Value: key}},
			} {
				m := c.Match(d, entries)
				if m.Rule != nil {
					require.NotEmpty(t, m.Key)
					require.Equal(t, d, m.Rule.Domain)
					require.True(t, m.Rule.Unlimited || m.Rule.Unit.Duration() > 0)
				}
			}
		}
	})
}
