package policyfile_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/policyfile"
)

var fuzzNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// FuzzParse checks that any input is either a valid file or an *Error
// with at least one problem, the problems in file order, and never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(exampleConfig))
	f.Add([]byte(""))
	f.Add([]byte("policies:\n  a: &x {capacity: 1, rate: 1/s}\n  b: *x\n  c: {limits: &l [*l]}\n"))
	f.Add([]byte("policies:\n  a: {capacity: 0.5, rate: 0.5/1m30s, shadow: true}\n---\n"))
	f.Add([]byte("default: x\npolicies:\n  x:\n    limits:\n      - {capacity: 1, rate: 1/s}\n      - {capacity: 2}\n"))
	f.Add([]byte("policies: [\n"))
	f.Add([]byte("#\n-\n{"))
	f.Add([]byte("policies:\n  <<: {a: 1}\n  ? [x]\n  : y\n"))
	f.Add([]byte("policies:\n  a: {capacity: 1,\n     rate: 1/s}\n  b:\n    capacity: 1\n   rate: 1/s\n"))
	f.Add([]byte("policies:\n  a: \"\xff\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := policyfile.Parse("f.yaml", data)
		if err != nil {
			var ce *policyfile.Error
			require.True(t, errors.As(err, &ce), "%T: %v", err, err)
			require.NotEmpty(t, ce.Problems)
			require.Zero(t, c)
			for i, p := range ce.Problems {
				require.NotEmpty(t, p.Msg)
				require.GreaterOrEqual(t, p.Line, 0)
				require.GreaterOrEqual(t, p.Column, 0)
				if p.Line == 0 {
					require.Zero(t, p.Column, "a column without a line")
				}
				if i > 0 && p.Line > 0 { // the last may say there were too many
					require.LessOrEqual(t, ce.Problems[i-1].Line, p.Line, "problems in file order")
				}
			}
			require.NotEmpty(t, err.Error())
			return
		}
		require.NotEmpty(t, c.Policies)
		names := map[string]bool{}
		for _, p := range c.Policies {
			require.NoError(t, p.Validate())
			require.Regexp(t, fuzzNameRE, p.Name)
			require.False(t, names[p.Name], "policy %q twice", p.Name)
			names[p.Name] = true
		}
		if c.Default != "" && c.Default != bucket.DefaultPolicy {
			require.True(t, names[c.Default], "default %q is not a policy", c.Default)
		}
	})
}
