package storage

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
)

// PolicyConfig is a set of named policies, as a config file gives them.
type PolicyConfig struct {
	// Default names the policy a take that names none uses; "" means
	// bucket.DefaultPolicy. When no policy has that name, the limit given
	// in Options.Default (the flags) becomes it.
	Default  string
	Policies []bucket.Policy
}

// counter counts a policy's decisions. It survives reloads that keep the
// policy's name.
type counter struct {
	allowed atomic.Uint64
	denied  atomic.Uint64
}

// policyEntry is a policy and its counter.
type policyEntry struct {
	bucket.Policy
	c *counter
}

// policyTable is an immutable set of named policies and overrides; changes
// swap in a new table.
type policyTable struct {
	def       string // the name of the default policy
	flags     bucket.Limit
	byName    map[string]policyEntry
	overrides map[overrideKey][]bucket.Limit
}

type overrideKey struct{ policy, key string }

func newPolicyTable(def bucket.Limit) *policyTable {
	return &policyTable{
		def:   bucket.DefaultPolicy,
		flags: def,
		byName: map[string]policyEntry{
			bucket.DefaultPolicy: {Policy: bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{def}}, c: new(counter)},
		},
	}
}

// clone returns a copy of t to change and swap in.
func (t *policyTable) clone() *policyTable {
	return &policyTable{def: t.def, flags: t.flags, byName: maps.Clone(t.byName), overrides: maps.Clone(t.overrides)}
}

// resolve returns the policy a take of key under name uses: the named (or
// default) policy, with key's override if it has one.
func (t *policyTable) resolve(key, name string) (policyEntry, error) {
	if name == "" {
		name = t.def
	}
	pe, ok := t.byName[name]
	if !ok {
		return policyEntry{}, fmt.Errorf("%w %q", bucket.ErrUnknownPolicy, name)
	}
	if len(t.overrides) > 0 {
		if ls, ok := t.overrides[overrideKey{pe.Name, key}]; ok {
			pe.Limits = ls
		}
	}
	return pe, nil
}

// Policy returns the named policy; "" names the default. The error wraps
// bucket.ErrUnknownPolicy.
func (db *DB) Policy(name string) (bucket.Policy, error) {
	pe, err := db.policies.Load().resolve("", name)
	return pe.Policy, err
}

// Policies returns every policy with its counts, by name.
func (db *DB) Policies() []bucket.PolicyInfo {
	t := db.policies.Load()
	out := make([]bucket.PolicyInfo, 0, len(t.byName))
	for _, name := range slices.Sorted(maps.Keys(t.byName)) {
		pe := t.byName[name]
		out = append(out, bucket.PolicyInfo{
			Policy:  pe.Policy,
			Default: name == t.def,
			Counts:  bucket.Counts{Allowed: pe.c.allowed.Load(), Denied: pe.c.denied.Load()},
		})
	}
	return out
}

// update applies change to a copy of the policy table and swaps it in,
// retrying if another change came first.
func (db *DB) update(change func(t *policyTable) error) error {
	for {
		old := db.policies.Load()
		next := old.clone()
		if err := change(next); err != nil {
			return err
		}
		if db.policies.CompareAndSwap(old, next) {
			return nil
		}
	}
}

// SetDefaultLimit makes l the single limit of the default policy. Existing
// buckets keep their tokens (clamped to the new capacity) and refill at the
// new rate from their next take.
func (db *DB) SetDefaultLimit(l bucket.Limit) error {
	if err := l.Validate(); err != nil {
		return err
	}
	return db.update(func(t *policyTable) error {
		pe := t.byName[t.def]
		pe.Limits = []bucket.Limit{l}
		t.byName[t.def] = pe
		if t.def == bucket.DefaultPolicy {
			t.flags = l
		}
		return nil
	})
}

// SetPolicies replaces every policy (a reload). Existing buckets keep their
// tokens, clamped to the new capacities, and earn the new rates from their
// next take; counts of policies that keep their names go on. An invalid
// config changes nothing. Overrides of policies that no longer exist stay
// stored, and apply again if the policy comes back.
func (db *DB) SetPolicies(c PolicyConfig) error {
	def := c.Default
	if def == "" {
		def = bucket.DefaultPolicy
	}
	seen := map[string]bool{}
	for _, p := range c.Policies {
		if err := p.Validate(); err != nil {
			return err
		}
		if seen[p.Name] {
			return fmt.Errorf("policy %q is given twice: %w", p.Name, bucket.ErrInvalid)
		}
		seen[p.Name] = true
	}
	if !seen[def] && def != bucket.DefaultPolicy {
		return fmt.Errorf("default policy %q is not defined: %w", def, bucket.ErrInvalid)
	}
	return db.update(func(t *policyTable) error {
		old := t.byName
		t.byName = make(map[string]policyEntry, len(c.Policies)+1)
		t.def = def
		add := func(p bucket.Policy) {
			pe := policyEntry{Policy: bucket.Policy{Name: p.Name, Limits: slices.Clone(p.Limits), Shadow: p.Shadow}}
			if o, ok := old[p.Name]; ok {
				pe.c = o.c
			} else {
				pe.c = new(counter)
			}
			t.byName[p.Name] = pe
		}
		for _, p := range c.Policies {
			add(p)
		}
		if !seen[def] {
			add(bucket.Policy{Name: def, Limits: []bucket.Limit{t.flags}})
		}
		return nil
	})
}

// overrideID is the bbolt key of an override: policy, NUL, key.
func overrideID(policy, key string) []byte {
	return append(append([]byte(policy), 0), key...)
}

// loadOverrides reads the stored overrides into the policy table.
func (db *DB) loadOverrides(tx *bolt.Tx) error {
	t := db.policies.Load().clone()
	t.overrides = map[overrideKey][]bucket.Limit{}
	err := tx.Bucket(overridesName).ForEach(func(k, v []byte) error {
		policy, key, ok := bytes.Cut(k, []byte{0})
		if !ok {
			db.log.Warn("storage: skipping unreadable override", "id", string(k))
			return nil
		}
		e, err := decode(v)
		if err != nil || len(e.subs) != 1 {
			db.log.Warn("storage: skipping unreadable override", "id", string(k), "err", err)
			return nil
		}
		t.overrides[overrideKey{string(policy), string(key)}] = e.subs[0].policy.Limits
		return nil
	})
	if err != nil {
		return err
	}
	db.policies.Store(t)
	return nil
}

// Override returns key's override under policy ("" is the default).
func (db *DB) Override(key, policy string) (bucket.Override, bool) {
	t := db.policies.Load()
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
func (db *DB) Overrides() []bucket.Override {
	t := db.policies.Load()
	out := make([]bucket.Override, 0, len(t.overrides))
	for k, ls := range t.overrides {
		out = append(out, bucket.Override{Key: k.key, Policy: k.policy, Limits: slices.Clone(ls)})
	}
	slices.SortFunc(out, func(a, b bucket.Override) int {
		if c := strings.Compare(a.Policy, b.Policy); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// SetOverride stores o, replacing any override of the same key and policy
// ("" is the default). It is on disk before it returns. The policy must
// exist (bucket.ErrUnknownPolicy) and the limits be valid (bucket.ErrInvalid).
// The key's bucket keeps its tokens, clamped to the new capacities.
func (db *DB) SetOverride(o bucket.Override) error {
	if err := checkKey(o.Key); err != nil {
		return err
	}
	t := db.policies.Load()
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
	return db.writeOverride(o.Policy, o.Key, p.Limits)
}

// DeleteOverride removes key's override under policy ("" is the default)
// and reports whether there was one. It is on disk before it returns.
func (db *DB) DeleteOverride(key, policy string) (bool, error) {
	if policy == "" {
		policy = db.policies.Load().def
	}
	if _, ok := db.policies.Load().overrides[overrideKey{policy, key}]; !ok {
		return false, nil
	}
	return true, db.writeOverride(policy, key, nil)
}

// writeOverride stores (limits != nil) or deletes an override, on disk and
// then in the policy table. db.flushMu orders it with flushes.
func (db *DB) writeOverride(policy, key string, limits []bucket.Limit) error {
	if db.closed.Load() {
		return bucket.ErrClosed
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(overridesName)
		id := overrideID(policy, key)
		if limits == nil {
			return b.Delete(id)
		}
		e := newEntry(key)
		s := e.add(bucket.Policy{Name: policy, Limits: limits})
		for i, l := range limits {
			s.states[i] = bucket.State{Tokens: l.Capacity}
		}
		return b.Put(id, encode(nil, e))
	})
	if err != nil {
		return fmt.Errorf("storage: override: %w", err)
	}
	return db.update(func(t *policyTable) error {
		k := overrideKey{policy, key}
		if limits == nil {
			delete(t.overrides, k)
		} else {
			if t.overrides == nil {
				t.overrides = map[overrideKey][]bucket.Limit{}
			}
			t.overrides[k] = limits
		}
		return nil
	})
}
