package limiter

import (
	"fmt"
	"slices"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// Override returns key's override under policy ("" is the default), and
// false when there is none.
func (l *Limiter) Override(key, policy string) (bucket.Override, bool) {
	t := l.policies.Load()
	if policy == "" {
		policy = t.def
	}
	ls, ok := t.overrides[overrideKey{policy, key}]
	if !ok {
		return bucket.Override{}, false
	}
	return bucket.Override{Key: key, Policy: policy, Limits: slices.Clone(ls)}, true
}

// Overrides lists every override, by policy then key.
func (l *Limiter) Overrides() []bucket.Override {
	t := l.policies.Load()
	out := make([]bucket.Override, 0, len(t.overrides))
	for k, ls := range t.overrides {
		out = append(out, bucket.Override{Key: k.key, Policy: k.policy, Limits: slices.Clone(ls)})
	}
	sortOverrides(out)
	return out
}

// SetOverride stores o, replacing any override of the same key and policy
// ("" is the default). It is durable before it returns. The policy must
// exist (bucket.ErrUnknownPolicy) and the limits be valid (bucket.ErrInvalid).
// The key's bucket keeps its tokens, clamped to the new capacities, from
// its next take.
func (l *Limiter) SetOverride(o bucket.Override) error {
	s := l.txn.stripe(o.Key)
	s.RLock()
	defer s.RUnlock()
	defer l.txn.touch(o.Key) // harmless when nothing changed
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.policies.Load()
	if o.Policy == "" {
		o.Policy = t.def
	}
	if _, ok := t.byName[o.Policy]; !ok {
		return fmt.Errorf("%w %q", bucket.ErrUnknownPolicy, o.Policy)
	}
	p := bucket.Policy{Name: o.Policy, Limits: slices.Clone(o.Limits)}
	if err := p.Validate(); err != nil {
		return err
	}
	if err := l.store.PutOverride(storage.Override{NS: storage.PolicyNS(o.Policy), Key: o.Key, Limits: p.Limits}); err != nil {
		return err
	}
	return l.updateLocked(func(t *table) error {
		t.overrides[overrideKey{o.Policy, o.Key}] = p.Limits
		return nil
	})
}

// DeleteOverride removes key's override under policy ("" is the default)
// and reports whether there was one. It is durable before it returns.
func (l *Limiter) DeleteOverride(key, policy string) (bool, error) {
	s := l.txn.stripe(key)
	s.RLock()
	defer s.RUnlock()
	defer l.txn.touch(key) // harmless when nothing changed
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.policies.Load()
	if policy == "" {
		policy = t.def
	}
	k := overrideKey{policy, key}
	if _, ok := t.overrides[k]; !ok {
		return false, nil
	}
	if err := l.store.DeleteOverride(storage.PolicyNS(policy), key); err != nil {
		return false, err
	}
	return true, l.updateLocked(func(t *table) error {
		delete(t.overrides, k)
		return nil
	})
}
