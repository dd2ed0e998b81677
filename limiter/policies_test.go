package limiter_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
)

func TestDefaultPolicyFromFlags(t *testing.T) {
	flags := bucket.Limit{Capacity: tok(3), Rate: slow}
	tests := []struct {
		name string
		opts limiter.Options
		want bucket.Limit
	}{
		{"zero options: DefaultLimit", limiter.Options{}, limiter.DefaultLimit},
		{"the flags' limit", limiter.Options{Default: flags}, flags},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _, _ := newLimiter(t, tt.opts)
			want := bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{tt.want}}
			for _, name := range []string{"", bucket.DefaultPolicy} {
				p, err := l.Policy(name)
				require.NoError(t, err)
				assert.Equal(t, want, p, "Policy(%q)", name)
			}
			assert.Equal(t, []bucket.PolicyInfo{{Policy: want, Default: true}}, l.Policies())

			res := take(t, l, "k", "", tok(1))
			assert.True(t, res.Allowed)
			assert.Equal(t, want, res.Policy)
			assert.Equal(t, tt.want.Capacity, res.Limit)
			assert.Equal(t, tt.want.Capacity-tok(1), res.Remaining)
			assert.Nil(t, res.Limits, "one limit has no per-limit decisions")
		})
	}
}

func TestNewRefusesAnInvalidDefault(t *testing.T) {
	_, db, _ := newLimiter(t)
	_, err := limiter.New(db, limiter.Options{Default: bucket.Limit{Capacity: tok(5)}})
	assert.ErrorIs(t, err, bucket.ErrInvalid, "a limit with no rate")
}

func TestSetPoliciesDefault(t *testing.T) {
	flags := bucket.Limit{Capacity: tok(3), Rate: slow}
	fileDefault := bucket.Limit{Capacity: tok(7), Rate: slow}
	withFileDefault := tiers()
	withFileDefault[2].Limits = []bucket.Limit{fileDefault}
	tests := []struct {
		name     string
		def      string
		policies []bucket.Policy
		want     bucket.Policy // Policy(""): what a take that names none uses
	}{
		{"the file names another policy", "trial", tiers(), tiers()[1]},
		{"the file defines \"default\"", "", withFileDefault,
			bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{fileDefault}}},
		{"the file lacks it: the flags' limit", "", tiers()[:1],
			bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{flags}}},
		{"no policies at all: the flags' limit", "", nil,
			bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{flags}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _, _ := newLimiter(t, limiter.Options{Default: flags})
			require.NoError(t, l.SetPolicies(tt.def, tt.policies))
			p, err := l.Policy("")
			require.NoError(t, err)
			assert.Equal(t, tt.want, p)

			res := take(t, l, "k", "", tok(1))
			assert.Equal(t, tt.want, res.Policy)
			var defaults []string
			for _, pi := range l.Policies() {
				if pi.Default {
					defaults = append(defaults, pi.Name)
				}
			}
			assert.Equal(t, []string{tt.want.Name}, defaults, "exactly one policy is marked default")
			assert.Equal(t, bucket.Counts{Allowed: 1}, counts(t, l, tt.want.Name))
		})
	}
}

func TestPoliciesAreListedByName(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", []bucket.Policy{tiers()[1], tiers()[0]}))
	var names []string
	for _, p := range l.Policies() {
		names = append(names, p.Name)
	}
	assert.Equal(t, []string{"api", bucket.DefaultPolicy, "trial"}, names)
}

func TestUnknownPolicy(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	// A policy that a reload removed is unknown too.
	require.NoError(t, l.SetPolicies("", tiers()[:1]))
	lim := []bucket.Limit{limiter.DefaultLimit}
	for _, name := range []string{"gold", "trial"} {
		ops := []struct {
			op string
			do func() error
		}{
			{"Take", func() error { _, err := l.Take("k", name, tok(1)); return err }},
			{"Take peek", func() error { _, err := l.Take("k", name, 0); return err }},
			{"Policy", func() error { _, err := l.Policy(name); return err }},
			{"Set", func() error { _, err := l.Set("k", name, tok(1)); return err }},
			{"SetOverride", func() error { return l.SetOverride(bucket.Override{Key: "k", Policy: name, Limits: lim}) }},
			{"Reset", func() error { _, err := l.Reset("k", name); return err }},
		}
		for _, op := range ops {
			t.Run(name+"/"+op.op, func(t *testing.T) {
				assert.ErrorIs(t, op.do(), bucket.ErrUnknownPolicy)
			})
		}
	}
	n, err := l.Len()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing made a bucket")
	assert.Empty(t, l.Overrides())
}

func TestInvalidPolicySetsChangeNothing(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	take(t, l, "k", "api", tok(1))
	before := l.Policies()

	mutate := func(change func(ps []bucket.Policy) []bucket.Policy) []bucket.Policy { return change(tiers()) }
	tooMany := make([]bucket.Limit, bucket.MaxLimits+1)
	for i := range tooMany {
		tooMany[i] = limiter.DefaultLimit
	}
	tests := []struct {
		name     string
		def      string
		policies []bucket.Policy
	}{
		{"a zero capacity", "", mutate(func(ps []bucket.Policy) []bucket.Policy { ps[0].Limits[0].Capacity = 0; return ps })},
		{"a zero rate", "", mutate(func(ps []bucket.Policy) []bucket.Policy { ps[0].Limits[1].Rate = bucket.Rate{}; return ps })},
		{"no limits", "", mutate(func(ps []bucket.Policy) []bucket.Policy { ps[1].Limits = nil; return ps })},
		{"too many limits", "", mutate(func(ps []bucket.Policy) []bucket.Policy { ps[1].Limits = tooMany; return ps })},
		{"no name", "", mutate(func(ps []bucket.Policy) []bucket.Policy { ps[1].Name = ""; return ps })},
		{"a name given twice", "", mutate(func(ps []bucket.Policy) []bucket.Policy { return append(ps, ps[0]) })},
		{"an undefined default", "nope", tiers()},
		{"a name longer than the store holds", "", mutate(func(ps []bucket.Policy) []bucket.Policy {
			ps[1].Name = strings.Repeat("n", 256)
			return ps
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, l.SetPolicies(tt.def, tt.policies), bucket.ErrInvalid)
			assert.Equal(t, before, l.Policies(), "the old policies stay, with their counts")
			res := take(t, l, "k", "api", 0)
			assert.Equal(t, tiers()[0], res.Policy)
			assert.Equal(t, tok(9), res.Remaining)
		})
	}
}

// TestReloadKeepsTokens follows one bucket through reloads that change its
// policy's limits. Every take and reload is at one instant but the last, so
// that only the carry of tokens decides what each peek sees.
func TestReloadKeepsTokens(t *testing.T) {
	l, _, c := newLimiter(t)
	api := func(lim bucket.Limit) []bucket.Policy {
		return []bucket.Policy{{Name: "api", Limits: []bucket.Limit{lim}}}
	}
	tenth := bucket.Every(10 * time.Second)
	steps := []struct {
		name    string
		reload  bucket.Limit // applied first, if not zero
		advance time.Duration
		cost    bucket.Tokens
		want    bucket.Decision
	}{
		{"take 4 of 10", bucket.Limit{Capacity: tok(10), Rate: bucket.PerSecond(1)}, 0, tok(4),
			bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(6), ResetAfter: 4 * time.Second}},
		{"grow to 20: kept, not refilled or reset", bucket.Limit{Capacity: tok(20), Rate: tenth}, 0, 0,
			bucket.Decision{Allowed: true, Limit: tok(20), Remaining: tok(6), ResetAfter: 140 * time.Second}},
		{"shrink to 3: clamped", bucket.Limit{Capacity: tok(3), Rate: tenth}, 0, 0,
			bucket.Decision{Allowed: true, Limit: tok(3), Remaining: tok(3)}},
		{"take 1 of the 3", bucket.Limit{}, 0, tok(1),
			bucket.Decision{Allowed: true, Limit: tok(3), Remaining: tok(2), ResetAfter: 10 * time.Second}},
		{"grow to 10: the clamp stays", bucket.Limit{Capacity: tok(10), Rate: tenth}, 0, 0,
			bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(2), ResetAfter: 80 * time.Second}},
		{"take 1 under the new limit", bucket.Limit{}, 0, tok(1),
			bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(1), ResetAfter: 90 * time.Second}},
		{"10 s later: one token at the new rate, not ten at the old", bucket.Limit{}, 10 * time.Second, 0,
			bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(2), ResetAfter: 80 * time.Second}},
	}
	for _, s := range steps {
		if s.reload != (bucket.Limit{}) {
			require.NoError(t, l.SetPolicies("", api(s.reload)), s.name)
		}
		c.Advance(s.advance)
		res := take(t, l, "k", "api", s.cost)
		assert.Equal(t, s.want, res.Decision, s.name)
	}
}

func TestCountsSurviveReloadsThatKeepAName(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	take(t, l, "k", "api", tok(1))
	take(t, l, "k", "api", tok(100)) // more than the capacity: refused
	take(t, l, "k", "", tok(1))

	next := tiers()
	next[0].Limits[0].Capacity = tok(5)
	next[1] = bucket.Policy{Name: "new", Limits: []bucket.Limit{limiter.DefaultLimit}}
	require.NoError(t, l.SetPolicies("", next))
	assert.Equal(t, bucket.Counts{Allowed: 1, Denied: 1}, counts(t, l, "api"), "api kept its name, and its counts")
	assert.Equal(t, bucket.Counts{Allowed: 1}, counts(t, l, bucket.DefaultPolicy))
	assert.Equal(t, bucket.Counts{}, counts(t, l, "new"), "a new policy starts at zero")

	take(t, l, "k", "api", tok(1))
	assert.Equal(t, bucket.Counts{Allowed: 2, Denied: 1}, counts(t, l, "api"), "and go on counting")
}

func TestSetDefaultLimit(t *testing.T) {
	l, _, _ := newLimiter(t)
	steps := []struct {
		name  string
		limit bucket.Limit // applied first, if not zero
		key   string
		cost  bucket.Tokens
		want  bucket.Decision
	}{
		{"take 1 of 5", bucket.Limit{}, "k", tok(1), bucket.Decision{Allowed: true, Limit: tok(5), Remaining: tok(4), ResetAfter: 3 * time.Second}},
		{"shrink to 3: tokens clamped", bucket.Limit{Capacity: tok(3), Rate: slow}, "k", 0, bucket.Decision{Allowed: true, Limit: tok(3), Remaining: tok(3)}},
		{"take 1 of 3", bucket.Limit{}, "k", tok(1), bucket.Decision{Allowed: true, Limit: tok(3), Remaining: tok(2), ResetAfter: time.Hour}},
		{"grow to 10: tokens kept, not reset", bucket.Limit{Capacity: tok(10), Rate: slow}, "k", 0, bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(2), ResetAfter: 8 * time.Hour}},
		{"take 2 of 10", bucket.Limit{}, "k", tok(2), bucket.Decision{Allowed: true, Limit: tok(10), Remaining: 0, ResetAfter: 10 * time.Hour}},
		{"a new key starts full under the new limit", bucket.Limit{}, "new", tok(1), bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(9), ResetAfter: time.Hour}},
	}
	for _, s := range steps {
		if s.limit != (bucket.Limit{}) {
			require.NoError(t, l.SetDefaultLimit(s.limit), s.name)
		}
		res := take(t, l, s.key, "", s.cost)
		assert.Equal(t, s.want, res.Decision, s.name)
	}
	want := bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{{Capacity: tok(10), Rate: slow}}}
	p, err := l.Policy("")
	require.NoError(t, err)
	assert.Equal(t, want, p)

	assert.ErrorIs(t, l.SetDefaultLimit(bucket.Limit{}), bucket.ErrInvalid)
	p, err = l.Policy("")
	require.NoError(t, err)
	assert.Equal(t, want, p, "an invalid limit changes nothing")

	// It is the flags' limit now: a reload without "default" keeps it.
	require.NoError(t, l.SetPolicies("", tiers()[:1]))
	p, err = l.Policy("")
	require.NoError(t, err)
	assert.Equal(t, want, p)
}

func TestSetDefaultLimitChangesTheFilesDefault(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("trial", tiers()))
	lim := bucket.Limit{Capacity: tok(4), Rate: slow}
	require.NoError(t, l.SetDefaultLimit(lim))
	p, err := l.Policy("trial")
	require.NoError(t, err)
	assert.Equal(t, bucket.Policy{Name: "trial", Shadow: true, Limits: []bucket.Limit{lim}}, p)
	p, err = l.Policy(bucket.DefaultPolicy)
	require.NoError(t, err)
	assert.Equal(t, tiers()[2], p, "the policy named default is not the default")
}

// TestReturnedLimitsAreCopies edits every Limits slice the limiter hands
// out, and checks that no policy or override changed for any key.
func TestReturnedLimitsAreCopies(t *testing.T) {
	premium := []bucket.Limit{{Capacity: tok(100), Rate: bucket.PerSecond(10)}}
	getters := []struct {
		name string
		get  func(t *testing.T, l *limiter.Limiter) []bucket.Limit
	}{
		{"Take", func(t *testing.T, l *limiter.Limiter) []bucket.Limit {
			return take(t, l, "x", "api", tok(1)).Policy.Limits
		}},
		{"Take of the default", func(t *testing.T, l *limiter.Limiter) []bucket.Limit {
			return take(t, l, "x", "", tok(1)).Policy.Limits
		}},
		{"Take with an override", func(t *testing.T, l *limiter.Limiter) []bucket.Limit {
			return take(t, l, "vip", "api", tok(1)).Policy.Limits
		}},
		{"Set", func(t *testing.T, l *limiter.Limiter) []bucket.Limit {
			res, err := l.Set("x", "api", tok(1))
			require.NoError(t, err)
			return res.Policy.Limits
		}},
		{"Policy", func(t *testing.T, l *limiter.Limiter) []bucket.Limit {
			p, err := l.Policy("api")
			require.NoError(t, err)
			return p.Limits
		}},
		{"Policy of the default", func(t *testing.T, l *limiter.Limiter) []bucket.Limit {
			p, err := l.Policy("")
			require.NoError(t, err)
			return p.Limits
		}},
		{"Policies", func(t *testing.T, l *limiter.Limiter) []bucket.Limit { return l.Policies()[0].Limits }},
		{"Override", func(t *testing.T, l *limiter.Limiter) []bucket.Limit {
			o, ok := l.Override("vip", "api")
			require.True(t, ok)
			return o.Limits
		}},
		{"Overrides", func(t *testing.T, l *limiter.Limiter) []bucket.Limit { return l.Overrides()[0].Limits }},
		{"Inspect", func(t *testing.T, l *limiter.Limiter) []bucket.Limit {
			take(t, l, "x", "", tok(1))
			v, ok, err := l.Inspect("x")
			require.NoError(t, err)
			require.True(t, ok)
			return v.Snapshot.Policy.Limits
		}},
	}
	for _, g := range getters {
		t.Run(g.name, func(t *testing.T) {
			l, _, _ := newLimiter(t)
			require.NoError(t, l.SetPolicies("", tiers()))
			require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))

			got := g.get(t, l)
			require.NotEmpty(t, got)
			for i := range got {
				got[i] = bucket.Limit{Capacity: tok(1), Rate: slow}
			}

			for _, name := range []string{"api", ""} {
				p, err := l.Policy(name)
				require.NoError(t, err)
				want := tiers()[0]
				if name == "" {
					want = tiers()[2]
				}
				assert.Equal(t, want, p, "Policy(%q)", name)
				assert.Equal(t, want.Capacity(), take(t, l, "other", name, 0).Limit, "another key under %q", name)
			}
			o, ok := l.Override("vip", "api")
			require.True(t, ok)
			assert.Equal(t, premium, o.Limits)
			assert.Equal(t, tok(100), take(t, l, "vip", "api", 0).Limit, "the override")
		})
	}
}

// TestGivenLimitsAreCopied edits the slices given to SetPolicies and
// SetOverride after the call.
func TestGivenLimitsAreCopied(t *testing.T) {
	l, _, _ := newLimiter(t)
	ps := tiers()
	require.NoError(t, l.SetPolicies("", ps))
	premium := []bucket.Limit{{Capacity: tok(100), Rate: bucket.PerSecond(10)}}
	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))
	ps[0].Limits[0].Capacity = tok(1)
	premium[0].Capacity = tok(1)

	p, err := l.Policy("api")
	require.NoError(t, err)
	assert.Equal(t, tiers()[0], p)
	assert.Equal(t, tok(100), take(t, l, "vip", "api", 0).Limit)
}

func TestTakesAreCountedPerPolicy(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	take(t, l, "k", "api", tok(6))   // allowed: 4 left
	take(t, l, "k", "api", tok(4))   // allowed: 0 left
	take(t, l, "k", "api", tok(1))   // refused
	take(t, l, "k", "api", tok(100)) // more than the capacity: refused
	take(t, l, "k", "api", 0)        // peeks are not counted
	take(t, l, "j", "api", 0)
	take(t, l, "k", "", tok(1))
	_, err := l.Take("k", "api", -tok(1))
	require.ErrorIs(t, err, bucket.ErrInvalid)

	assert.Equal(t, bucket.Counts{Allowed: 2, Denied: 2}, counts(t, l, "api"))
	assert.Equal(t, bucket.Counts{Allowed: 1}, counts(t, l, bucket.DefaultPolicy))
	assert.Equal(t, bucket.Counts{}, counts(t, l, "trial"))
	assert.Equal(t, bucket.Counts{}, l.CellCounts(), "no CL.THROTTLE yet")
}

func TestThrottleIsCountedApart(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	lim := bucket.Limit{Capacity: tok(2), Rate: slow}
	for _, key := range []string{"k", "api", bucket.DefaultPolicy} { // keys named like policies too
		throttle(t, l, key, lim, tok(2))  // allowed
		throttle(t, l, key, lim, tok(1))  // refused
		throttle(t, l, key, lim, 0)       // a peek: not counted
		throttle(t, l, key, lim, -tok(1)) // a give-back: not counted
	}
	assert.Equal(t, bucket.Counts{Allowed: 3, Denied: 3}, l.CellCounts())
	for _, p := range l.Policies() {
		assert.Equal(t, bucket.Counts{}, p.Counts, "policy %q", p.Name)
	}
}

func TestShadowRefusalIsLoggedOnce(t *testing.T) {
	var logs logBuffer
	l, _, _ := newLimiter(t, limiter.Options{Logger: logs.logger()})
	require.NoError(t, l.SetPolicies("", tiers()))

	res := take(t, l, "k", "trial", tok(1))
	assert.True(t, res.Allowed)
	assert.True(t, res.Policy.Shadow)
	assert.Empty(t, logs.String(), "an allowed take under a shadow policy is not logged")

	res = take(t, l, "k", "trial", tok(1))
	assert.False(t, res.Allowed, "the decision is computed as if enforced; the caller allows it")
	assert.True(t, res.Policy.Shadow)
	take(t, l, "k", "trial", 0)      // a peek of an empty bucket: no take, no log
	take(t, l, "k", "api", tok(100)) // a refusal under a policy that is not shadow

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 1, logs.String())
	assert.Contains(t, lines[0], "level=INFO")
	assert.Contains(t, lines[0], `msg="shadow policy refused a take; allowed"`)
	assert.Contains(t, lines[0], "policy=trial key=k cost=1 retry_after=1h0m0s")
	assert.Equal(t, bucket.Counts{Allowed: 1, Denied: 1}, counts(t, l, "trial"), "a shadow refusal is counted as denied")
}

func TestShadowRefusalLogsEachRefusal(t *testing.T) {
	var logs logBuffer
	l, _, _ := newLimiter(t, limiter.Options{Logger: logs.logger()})
	require.NoError(t, l.SetPolicies("", tiers()))
	for i := range 4 {
		take(t, l, fmt.Sprint("k", i%2), "trial", tok(1))
	}
	assert.Equal(t, 2, strings.Count(logs.String(), "shadow policy refused a take"), logs.String())
	assert.Contains(t, logs.String(), "key=k0")
	assert.Contains(t, logs.String(), "key=k1")
}
