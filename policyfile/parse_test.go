package policyfile_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/policyfile"
)

const tok = bucket.Token

// exampleConfig is the example of the README and of the package doc.
const exampleConfig = `default: free            # the policy a take that names none uses
policies:
  free:
    capacity: 5
    rate: 1/3s
  paid:
    limits:
      - {capacity: 100, rate: 10/s}
      - {capacity: 100000, rate: 100000/d}
  new-search:
    capacity: 10
    rate: 1/s
    shadow: true
`

// limit is a limit written as the file writes it.
func limit(t *testing.T, capacity, rate string) bucket.Limit {
	t.Helper()
	c, err := bucket.ParseTokens(capacity)
	require.NoError(t, err)
	r, err := bucket.ParseRate(rate)
	require.NoError(t, err)
	return bucket.Limit{Capacity: c, Rate: r}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want func(t *testing.T) policyfile.Config
	}{
		{"example", exampleConfig, func(t *testing.T) policyfile.Config {
			return policyfile.Config{Default: "free", Policies: []bucket.Policy{
				{Name: "free", Limits: []bucket.Limit{limit(t, "5", "1/3s")}},
				{Name: "paid", Limits: []bucket.Limit{limit(t, "100", "10/s"), limit(t, "100000", "100000/d")}},
				{Name: "new-search", Limits: []bucket.Limit{limit(t, "10", "1/s")}, Shadow: true},
			}}
		}},
		{"shorthand, no default", "policies:\n  default:\n    capacity: 5\n    rate: 1/3s\n", func(t *testing.T) policyfile.Config {
			return policyfile.Config{Policies: []bucket.Policy{
				{Name: "default", Limits: []bucket.Limit{{Capacity: 5 * tok, Rate: bucket.Every(3 * time.Second)}}},
			}}
		}},
		{"multi-limit in block style", `
policies:
  api:
    limits:
      - capacity: 10
        rate: 10/s
      - capacity: 1000
        rate: 1000/h
      - capacity: 5000
        rate: 5000/7d
`, func(t *testing.T) policyfile.Config {
			return policyfile.Config{Policies: []bucket.Policy{{Name: "api", Limits: []bucket.Limit{
				limit(t, "10", "10/s"), limit(t, "1000", "1000/h"),
				{Capacity: 5000 * tok, Rate: bucket.Rate{Tokens: 5000 * tok, Per: 7 * 24 * time.Hour}},
			}}}}
		}},
		{"shadow true and false", "policies:\n  a: {capacity: 1, rate: 1/s, shadow: true}\n  b: {capacity: 1, rate: 1/s, shadow: false}\n", func(t *testing.T) policyfile.Config {
			return policyfile.Config{Policies: []bucket.Policy{
				{Name: "a", Limits: []bucket.Limit{limit(t, "1", "1/s")}, Shadow: true},
				{Name: "b", Limits: []bucket.Limit{limit(t, "1", "1/s")}},
			}}
		}},
		{"on_store_error closed and open", "policies:\n  a: {capacity: 1, rate: 1/s, on_store_error: open}\n  b: {capacity: 1, rate: 1/s, on_store_error: closed}\n  c: {capacity: 1, rate: 1/s}\n", func(t *testing.T) policyfile.Config {
			return policyfile.Config{Policies: []bucket.Policy{
				{Name: "a", Limits: []bucket.Limit{limit(t, "1", "1/s")}, OnStoreError: bucket.FailOpen},
				{Name: "b", Limits: []bucket.Limit{limit(t, "1", "1/s")}, OnStoreError: bucket.FailClosed},
				{Name: "c", Limits: []bucket.Limit{limit(t, "1", "1/s")}},
			}}
		}},
		{"default named default, made by the flags", "default: default\npolicies:\n  gold: {capacity: 50, rate: 5/s}\n", func(t *testing.T) policyfile.Config {
			return policyfile.Config{Default: "default", Policies: []bucket.Policy{
				{Name: "gold", Limits: []bucket.Limit{limit(t, "50", "5/s")}},
			}}
		}},
		{"decimals are exact", `
policies:
  tenth: {capacity: 0.1, rate: 0.5/1m30s}
  quarter: {capacity: 2.25, rate: 0.000001/s}
  quoted: {capacity: "3", rate: "1/3s"}
  big: {capacity: 1000000000000, rate: 1000000000/s}
`, func(t *testing.T) policyfile.Config {
			return policyfile.Config{Policies: []bucket.Policy{
				{Name: "tenth", Limits: []bucket.Limit{{Capacity: 100_000, Rate: bucket.Rate{Tokens: tok / 2, Per: 90 * time.Second}}}},
				{Name: "quarter", Limits: []bucket.Limit{{Capacity: 2_250_000, Rate: bucket.Rate{Tokens: 1, Per: time.Second}}}},
				{Name: "quoted", Limits: []bucket.Limit{limit(t, "3", "1/3s")}},
				{Name: "big", Limits: []bucket.Limit{{Capacity: bucket.MaxTokens, Rate: bucket.PerSecond(1e9)}}},
			}}
		}},
		{"names and file order", "policies:\n  z.9_A-b: {capacity: 1, rate: 1/s}\n  " + strings.Repeat("n", 64) + ": {capacity: 2, rate: 2/s}\n  123: {capacity: 3, rate: 3/s}\n", func(t *testing.T) policyfile.Config {
			return policyfile.Config{Policies: []bucket.Policy{
				{Name: "z.9_A-b", Limits: []bucket.Limit{limit(t, "1", "1/s")}},
				{Name: strings.Repeat("n", 64), Limits: []bucket.Limit{limit(t, "2", "2/s")}},
				{Name: "123", Limits: []bucket.Limit{limit(t, "3", "3/s")}},
			}}
		}},
		{"aliases and a document start", "---\npolicies:\n  a: &std {capacity: 4, rate: 2/s}\n  b: *std\n", func(t *testing.T) policyfile.Config {
			return policyfile.Config{Policies: []bucket.Policy{
				{Name: "a", Limits: []bucket.Limit{limit(t, "4", "2/s")}},
				{Name: "b", Limits: []bucket.Limit{limit(t, "4", "2/s")}},
			}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := policyfile.Parse("p.yaml", []byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want(t), got)
			for _, p := range got.Policies {
				assert.NoError(t, p.Validate())
			}
		})
	}
}

// problem is an expected problem: its position and field exactly, and a
// part of its message.
type problem struct {
	line, col int
	field     string
	msg       string
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []problem
	}{
		{"bad rate", exampleConfig[:strings.Index(exampleConfig, "100000/d")] + "100000/x}\n",
			[]problem{{9, 34, "policies.paid.limits[1].rate", `rate "100000/x": period "x" is not a duration`}}},
		{"rate without a period", "policies:\n  a:\n    capacity: 5\n    rate: 100\n",
			[]problem{{4, 11, "policies.a.rate", `rate "100" is not TOKENS/PERIOD`}}},
		{"zero capacity", "policies:\n  a:\n    capacity: 0\n    rate: 1/s\n",
			[]problem{{3, 15, "policies.a.capacity", "capacity 0 must be positive"}}},
		{"negative capacity", "policies:\n  a: {capacity: -1, rate: 1/s}\n",
			[]problem{{2, 17, "policies.a.capacity", `"-1" is negative`}}},
		{"capacity finer than a micro-token", "policies:\n  a: {capacity: 0.0000001, rate: 1/s}\n",
			[]problem{{2, 17, "policies.a.capacity", "more than 6 decimal places"}}},
		{"capacity above the maximum", "policies:\n  a: {capacity: 1000000000001, rate: 1/s}\n",
			[]problem{{2, 17, "policies.a.capacity", "more than the maximum"}}},
		{"capacity as an exponent", "policies:\n  a: {capacity: 1e3, rate: 1/s}\n",
			[]problem{{2, 17, "policies.a.capacity", `"1e3" is not a decimal number`}}},
		{"capacity is not a scalar", "policies:\n  a: {capacity: [1], rate: 1/s}\n",
			[]problem{{2, 17, "policies.a.capacity", "want a number of tokens"}}},
		{"capacity with no value", "policies:\n  a:\n    capacity:\n    rate: 1/s\n",
			[]problem{{3, 14, "policies.a.capacity", "want a number of tokens"}}},
		{"rate too fast", "policies:\n  a: {capacity: 1, rate: 2000000000/s}\n",
			[]problem{{2, 26, "policies.a.rate", "faster than the maximum"}}},
		{"unknown field at the top", "policies:\n  a: {capacity: 1, rate: 1/s}\npolicy: b\n",
			[]problem{{3, 1, "policy", "unknown field; the file has default and policies"}}},
		{"unknown field in a policy", "policies:\n  a:\n    capacity: 1\n    rate: 1/s\n    burst: 2\n",
			[]problem{{5, 5, "policies.a.burst", "unknown field; a policy has capacity and rate, or limits, shadow and on_store_error"}}},
		{"on_store_error not closed or open", "policies:\n  a: {capacity: 1, rate: 1/s, on_store_error: allow}\n",
			[]problem{{2, 47, "policies.a.on_store_error", `want closed or open, not "allow"`}}},
		{"on_store_error not a string", "policies:\n  a: {capacity: 1, rate: 1/s, on_store_error: true}\n",
			[]problem{{2, 47, "policies.a.on_store_error", "want closed or open"}}},
		{"unknown field in a limit", "policies:\n  a:\n    limits:\n      - {capacity: 1, rate: 1/s, shadow: true}\n",
			[]problem{{4, 34, "policies.a.limits[0].shadow", "unknown field; a limit has capacity and rate"}}},
		{"unknown default", "default: gold\npolicies:\n  free: {capacity: 1, rate: 1/s}\n",
			[]problem{{1, 10, "default", `policy "gold" is not in policies`}}},
		{"default is not a name", "default: [free]\npolicies:\n  free: {capacity: 1, rate: 1/s}\n",
			[]problem{{1, 10, "default", "want a policy name"}}},
		{"default with a bad name", "default: no way\npolicies:\n  free: {capacity: 1, rate: 1/s}\n",
			[]problem{{1, 10, "default", `policy name "no way": want 1 to 64 letters`}}},
		{"duplicate policy names", "policies:\n  free: {capacity: 1, rate: 1/s}\n  paid: {capacity: 9, rate: 9/s}\n  free: {capacity: 2, rate: 2/s}\n",
			[]problem{{4, 3, "policies.free", "given twice; first at line 2"}}},
		{"duplicate field", "policies:\n  a:\n    capacity: 1\n    rate: 1/s\n    capacity: 2\n",
			[]problem{{5, 5, "policies.a.capacity", "given twice; first at line 3"}}},
		{"duplicate top-level field", "policies:\n  a: {capacity: 1, rate: 1/s}\npolicies:\n  b: {capacity: 1, rate: 1/s}\n",
			[]problem{{3, 1, "policies", "given twice; first at line 1"}}},
		{"bad name", "policies:\n  free tier: {capacity: 1, rate: 1/s}\n",
			[]problem{{2, 3, "policies.free tier", `policy name "free tier": want 1 to 64 letters, digits, '_', '.' or '-'`}}},
		{"name too long", "policies:\n  " + strings.Repeat("n", 65) + ": {capacity: 1, rate: 1/s}\n",
			[]problem{{2, 3, "policies." + strings.Repeat("n", 65), "want 1 to 64"}}},
		{"name that is not a scalar", "policies:\n  [a, b]: {capacity: 1, rate: 1/s}\n",
			[]problem{{2, 3, "policies", "want a name as the key, not a list"}}},
		{"empty file", "", []problem{{0, 0, "", "the file is empty"}}},
		{"only comments", "# policies: none yet\n\n", []problem{{0, 0, "", "the file is empty"}}},
		{"only a document start", "---\n", []problem{{2, 1, "", "the file is empty"}}},
		// A syntax error is placed where the parser stopped, with the line
		// and column of the construct it was reading when that began
		// elsewhere: here the flow mapping that line 2 leaves open.
		{"syntax error", "policies:\n  a: {capacity: 1, rate: 1/s\n  b: {capacity: 1, rate: 1/s}\n",
			[]problem{{3, 4, "", "YAML syntax: did not find expected ',' or '}' (while parsing a flow mapping at line 2, column 6)"}}},
		// yaml.v3 said line 1 here: the line before the block that holds
		// the mistake.
		{"syntax error: a key mis-indented", "policies:\n  a: {capacity: 1,\n     rate: 1/s}\n  b:\n    capacity: 1\n   rate: 1/s\n",
			[]problem{{6, 4, "", "YAML syntax: did not find expected key (while parsing a block mapping at line 2, column 3)"}}},
		{"syntax error after a valid flow mapping across lines", "policies:\n  a: {capacity: 1,\n     rate: 1/s}\n  b: {capacity: 1,\n     rate: 1/s\n  c: {capacity: 1, rate: 1/s}\n",
			[]problem{{6, 4, "", "YAML syntax: did not find expected ',' or '}' (while parsing a flow mapping at line 4, column 6)"}}},
		{"syntax error: unknown alias", "policies:\n  a: {capacity: 1, rate: 1/s}\n  b: *c\n",
			[]problem{{3, 6, "", "YAML syntax: unknown anchor 'c' referenced"}}},
		// At the end of the file: the line after the last line break.
		{"syntax error in a second document", "policies:\n  a: {capacity: 1, rate: 1/s}\n---\npolicies: [\n",
			[]problem{{5, 1, "", "YAML syntax: did not find expected node content"}}},
		{"syntax error: missing colon", "policies:\n  a:\n    capacity 1\n    rate: 1/s\n",
			[]problem{{4, 9, "", "YAML syntax: mapping values are not allowed in this context"}}},
		{"tab indentation", "policies:\n\ta: {capacity: 1, rate: 1/s}\n",
			[]problem{{2, 1, "", "YAML syntax: found character that cannot start any token"}}},
		{"not UTF-8: no position", "policies:\n  a: \"\xff\"\n",
			[]problem{{0, 0, "", "YAML syntax: invalid leading UTF-8 octet"}}},
		{"nested too deep", "policies: " + strings.Repeat("[", 10_001) + "\n",
			[]problem{{1, 10_011, "", "YAML syntax: exceeded max depth of 10000"}}},
		{"two documents", "policies:\n  a: {capacity: 1, rate: 1/s}\n---\npolicies:\n  b: {capacity: 1, rate: 1/s}\n",
			[]problem{{3, 1, "", "more than one YAML document"}}},
		{"limits and capacity both given", "policies:\n  a:\n    capacity: 1\n    rate: 1/s\n    limits:\n      - {capacity: 2, rate: 2/s}\n",
			[]problem{{5, 5, "policies.a.limits", "give either capacity and rate, or limits, not both"}}},
		{"capacity without rate", "policies:\n  a:\n    capacity: 1\n",
			[]problem{{3, 5, "policies.a", "rate is missing"}}},
		{"rate without capacity in a limit", "policies:\n  a:\n    limits:\n      - {rate: 1/s}\n",
			[]problem{{4, 9, "policies.a.limits[0]", "capacity is missing"}}},
		{"policy with no value", "policies:\n  a:\n  b: {capacity: 1, rate: 1/s}\n",
			[]problem{{2, 5, "policies.a", "no limits: give capacity and rate, or limits"}}},
		{"policy with only shadow", "policies:\n  a: {shadow: true}\n",
			[]problem{{2, 6, "policies.a", "no limits: give capacity and rate, or limits"}}},
		{"policy is a scalar", "policies:\n  a: 5/s\n",
			[]problem{{2, 6, "policies.a", "want a mapping"}}},
		{"limits empty", "policies:\n  a: {limits: []}\n",
			[]problem{{2, 15, "policies.a.limits", "empty: want at least one"}}},
		{"limits not a list", "policies:\n  a:\n    limits: {capacity: 1, rate: 1/s}\n",
			[]problem{{3, 13, "policies.a.limits", "want a list of {capacity, rate}"}}},
		{"limit not a mapping", "policies:\n  a:\n    limits:\n      - 10/s\n",
			[]problem{{4, 9, "policies.a.limits[0]", "want {capacity, rate}"}}},
		{"too many limits", "policies:\n  a:\n    limits: [" + strings.Repeat("{capacity: 1, rate: 1/s}, ", 16) + "{capacity: 1, rate: 1/s}]\n",
			[]problem{{3, 13, "policies.a.limits", "17 limits, more than the maximum of 16"}}},
		{"shadow is not a boolean", "policies:\n  a: {capacity: 1, rate: 1/s, shadow: yes}\n",
			[]problem{{2, 39, "policies.a.shadow", "want true or false"}}},
		{"no policies", "default: default\n", []problem{{1, 1, "policies", "missing: the file must name at least one policy"}}},
		{"policies empty", "policies:\n", []problem{{1, 10, "policies", "none given"}}},
		{"policies empty mapping", "policies: {}\n", []problem{{1, 11, "policies", "none given"}}},
		{"policies a list", "policies:\n  - free\n", []problem{{2, 3, "policies", "want a mapping"}}},
		{"the file is a list", "- policies\n", []problem{{1, 1, "", "want a mapping with policies"}}},
		{"every problem, in file order", `
default: gold
policies:
  free:
    capacity: 5
    rate: 1/3x
  paid:
    limits:
      - {capacity: 0, rate: 10/s}
      - {capacity: 100}
  free:
    capacity: 1
    rate: 1/s
  beta:
    capacity: 1
    rate: 1/s
    shadow: maybe
colour: blue
`, []problem{
			{2, 10, "default", `policy "gold" is not in policies`},
			{6, 11, "policies.free.rate", `rate "1/3x"`},
			{9, 20, "policies.paid.limits[0].capacity", "capacity 0 must be positive"},
			{10, 9, "policies.paid.limits[1]", "rate is missing"},
			{11, 3, "policies.free", "given twice; first at line 4"},
			{17, 13, "policies.beta.shadow", "want true or false"},
			{18, 1, "colour", "unknown field"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := policyfile.Parse("p.yaml", []byte(tt.in))
			require.Error(t, err)
			assert.Zero(t, c, "no policies from an invalid file")
			assert.ErrorIs(t, err, bucket.ErrInvalid)
			var ce *policyfile.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "p.yaml", ce.Name)
			got := make([]problem, len(ce.Problems))
			for i, p := range ce.Problems {
				got[i] = problem{p.Line, p.Column, p.Field, p.Msg}
			}
			require.Len(t, got, len(tt.want), "problems:\n%s", err)
			for i, w := range tt.want {
				assert.Equal(t, w.line, got[i].line, "problem %d: line: %s", i, got[i].msg)
				assert.Equal(t, w.col, got[i].col, "problem %d: column: %s", i, got[i].msg)
				assert.Equal(t, w.field, got[i].field, "problem %d: field", i)
				assert.Contains(t, got[i].msg, w.msg, "problem %d: message", i)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "policies.yaml")
	require.NoError(t, os.WriteFile(good, []byte(exampleConfig), 0o600))
	c, err := policyfile.Load(good)
	require.NoError(t, err)
	assert.Equal(t, "free", c.Default)
	assert.Len(t, c.Policies, 3)

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("policies:\n  a: {capacity: 0, rate: 1/s}\n"), 0o600))
	_, err = policyfile.Load(bad)
	require.Error(t, err)
	assert.Equal(t, bad+":2:17: policies.a.capacity: capacity 0 must be positive", err.Error(), "problems name the file as given")

	_, err = policyfile.Load(filepath.Join(dir, "missing.yaml"))
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.True(t, strings.HasPrefix(err.Error(), "policyfile: load config: open "+dir), err.Error())
	assert.Contains(t, err.Error(), "missing.yaml")
	assert.NotErrorIs(t, err, bucket.ErrInvalid, "a file that cannot be read is not an invalid config")
}

func TestParseTooManyProblems(t *testing.T) {
	t.Parallel()
	// Every policy is an alias of the policies mapping itself: a problem
	// for each of 2000 fields of each of 2000 policies, from 20 kB.
	var b strings.Builder
	b.WriteString("policies: &all {")
	for i := range 2000 {
		fmt.Fprintf(&b, "p%d: *all, ", i)
	}
	b.WriteString("}\n")
	start := time.Now()
	_, err := policyfile.Parse("p.yaml", []byte(b.String()))
	elapsed := time.Since(start)
	var ce *policyfile.Error
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 51)
	assert.Equal(t, policyfile.Problem{Msg: "too many problems: stopped after 50"}, ce.Problems[50])
	assert.Less(t, elapsed, 5*time.Second, "the walk stops at the limit")

	var many strings.Builder
	for i := range 60 {
		fmt.Fprintf(&many, "unknown%d: 1\n", i)
	}
	_, err = policyfile.Parse("p.yaml", []byte(many.String()))
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 51)
	assert.Equal(t, 1, ce.Problems[0].Line)
	assert.Equal(t, "unknown0", ce.Problems[0].Field)
}
