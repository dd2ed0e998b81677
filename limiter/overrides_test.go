package limiter_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// premium is the override of these tests: a capacity of 100.
var premium = []bucket.Limit{{Capacity: tok(100), Rate: slow}}

func TestSetOverrideAppliesFromTheNextTake(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	take(t, l, "vip", "api", tok(8)) // 2 of 10 left

	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))
	res := take(t, l, "vip", "api", 0)
	assert.Equal(t, bucket.Policy{Name: "api", Limits: premium}, res.Policy)
	assert.Nil(t, res.Limits, "one limit: the override replaced the policy's two")
	assert.Equal(t, tok(100), res.Limit)
	assert.Equal(t, tok(2), res.Remaining, "the bucket kept its tokens: not refilled to 100")

	res = take(t, l, "other", "api", tok(50))
	assert.False(t, res.Allowed, "other keys keep the policy")
	assert.Len(t, res.Limits, 2)
	assert.Equal(t, tok(10), res.Limit)

	// Tokens clamp to a smaller override.
	require.NoError(t, l.SetOverride(bucket.Override{Key: "other", Policy: "api", Limits: []bucket.Limit{{Capacity: tok(3), Rate: slow}}}))
	res = take(t, l, "other", "api", tok(1))
	assert.True(t, res.Allowed)
	assert.Equal(t, tok(2), res.Remaining)
	assert.Equal(t, tok(3), res.Limit)

	// Under another policy the key has no override.
	assert.Equal(t, tok(5), take(t, l, "vip", "", 0).Limit)
	_, ok := l.Override("vip", "")
	assert.False(t, ok)
}

func TestOverrideOfTheDefaultPolicy(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Limits: premium}), "policy \"\" is the default")
	o, ok := l.Override("vip", "")
	require.True(t, ok)
	assert.Equal(t, bucket.Override{Key: "vip", Policy: bucket.DefaultPolicy, Limits: premium}, o)
	o, ok = l.Override("vip", bucket.DefaultPolicy)
	require.True(t, ok)
	assert.Equal(t, premium, o.Limits)
	assert.Equal(t, tok(100), take(t, l, "vip", "", 0).Limit)
	assert.Equal(t, tok(100), take(t, l, "vip", bucket.DefaultPolicy, 0).Limit)

	deleted, err := l.DeleteOverride("vip", "")
	require.NoError(t, err)
	assert.True(t, deleted)
	assert.Equal(t, tok(5), take(t, l, "vip", "", 0).Limit)
}

func TestSetOverrideRefusals(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))
	before := l.Overrides()
	tooMany := make([]bucket.Limit, bucket.MaxLimits+1)
	for i := range tooMany {
		tooMany[i] = premium[0]
	}
	tests := []struct {
		name string
		o    bucket.Override
		want error
	}{
		{"unknown policy", bucket.Override{Key: "vip", Policy: "gold", Limits: premium}, bucket.ErrUnknownPolicy},
		{"no limits", bucket.Override{Key: "vip", Policy: "api"}, bucket.ErrInvalid},
		{"a zero capacity", bucket.Override{Key: "vip", Policy: "api", Limits: []bucket.Limit{{Rate: slow}}}, bucket.ErrInvalid},
		{"a zero rate", bucket.Override{Key: "vip", Policy: "api", Limits: []bucket.Limit{{Capacity: tok(1)}}}, bucket.ErrInvalid},
		{"too many limits", bucket.Override{Key: "vip", Policy: "api", Limits: tooMany}, bucket.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, l.SetOverride(tt.o), tt.want)
			assert.Equal(t, before, l.Overrides(), "nothing changed")
			assert.Equal(t, tok(100), take(t, l, "vip", "api", 0).Limit)
		})
	}
}

func TestDeleteOverrideReportsWhetherThereWasOne(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))
	steps := []struct {
		key, policy string
		want        bool
	}{
		{"vip", "", false}, // the default policy has none
		{"nobody", "api", false},
		{"vip", "gold", false}, // no such policy: no such override
		{"vip", "api", true},
		{"vip", "api", false},
	}
	for _, s := range steps {
		deleted, err := l.DeleteOverride(s.key, s.policy)
		require.NoError(t, err)
		assert.Equal(t, s.want, deleted, "DeleteOverride(%q, %q)", s.key, s.policy)
	}
	assert.Empty(t, l.Overrides())
	assert.Equal(t, tok(10), take(t, l, "vip", "api", 0).Limit, "the policy applies again")
}

func TestOverridesAreListedByPolicyThenKey(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	for _, o := range []bucket.Override{
		{Key: "b", Policy: "trial", Limits: premium},
		{Key: "b", Policy: "api", Limits: premium},
		{Key: "a", Policy: "trial", Limits: premium},
		{Key: "a", Limits: premium},
	} {
		require.NoError(t, l.SetOverride(o))
	}
	var got [][2]string
	for _, o := range l.Overrides() {
		got = append(got, [2]string{o.Policy, o.Key})
	}
	assert.Equal(t, [][2]string{{"api", "b"}, {bucket.DefaultPolicy, "a"}, {"trial", "a"}, {"trial", "b"}}, got)
}

func TestOverridesSurviveARestart(t *testing.T) {
	l, db, c := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))
	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Limits: premium}))
	require.NoError(t, l.SetOverride(bucket.Override{Key: "gone", Policy: "api", Limits: premium}))
	deleted, err := l.DeleteOverride("gone", "api")
	require.NoError(t, err)
	require.True(t, deleted)
	assert.True(t, take(t, l, "vip", "api", tok(50)).Allowed, "the override's capacity of 100 applies")

	l, db = restart(t, db, c)
	require.NoError(t, l.SetPolicies("", tiers()))
	o, ok := l.Override("vip", "api")
	require.True(t, ok, "the override survived the restart")
	assert.Equal(t, bucket.Override{Key: "vip", Policy: "api", Limits: premium}, o)
	_, ok = l.Override("vip", "")
	assert.True(t, ok)
	_, ok = l.Override("gone", "api")
	assert.False(t, ok, "the delete survived the restart")
	assert.Len(t, l.Overrides(), 2)

	res := take(t, l, "vip", "api", tok(50))
	assert.True(t, res.Allowed, "50 left of the override's 100")
	assert.Equal(t, tok(0), res.Remaining)

	// FlushAll makes the buckets full but keeps the overrides: they are
	// configuration.
	require.NoError(t, l.FlushAll())
	assert.Len(t, l.Overrides(), 2)
	l, _ = restart(t, db, c)
	assert.Len(t, l.Overrides(), 2)
}

func TestOverridesSurviveAReloadThatDropsThePolicy(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))

	require.NoError(t, l.SetPolicies("", tiers()[1:])) // without "api"
	_, err := l.Take("vip", "api", 0)
	assert.ErrorIs(t, err, bucket.ErrUnknownPolicy)
	assert.ErrorIs(t, l.SetOverride(bucket.Override{Key: "other", Policy: "api", Limits: premium}), bucket.ErrUnknownPolicy)

	require.NoError(t, l.SetPolicies("", tiers()))
	o, ok := l.Override("vip", "api")
	require.True(t, ok)
	assert.Equal(t, premium, o.Limits)
	assert.Equal(t, tok(100), take(t, l, "vip", "api", 0).Limit, "the override applies again")
	assert.Equal(t, tok(10), take(t, l, "other", "api", 0).Limit)
}
