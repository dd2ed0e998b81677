package limiter

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// policyEntry is a policy and its counter.
type policyEntry struct {
	bucket.Policy
	c *counter
}

// public returns the policy with a copy of its limits, for a caller to keep
// or change without changing the table.
func (pe policyEntry) public() bucket.Policy {
	p := pe.Policy
	p.Limits = slices.Clone(p.Limits)
	return p
}

// table is an immutable set of named policies and overrides; a change
// swaps in a new table. Its limits slices are never changed once stored.
type table struct {
	def       string       // the name of the default policy
	flags     bucket.Limit // the flags' limit: the default policy when the file has none
	byName    map[string]policyEntry
	overrides map[overrideKey][]bucket.Limit
}

type overrideKey struct{ policy, key string }

func newTable(def bucket.Limit) *table {
	return &table{
		def:   bucket.DefaultPolicy,
		flags: def,
		byName: map[string]policyEntry{
			bucket.DefaultPolicy: {Policy: bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{def}}, c: new(counter)},
		},
		overrides: map[overrideKey][]bucket.Limit{},
	}
}

// clone returns a copy of t to change and swap in.
func (t *table) clone() *table {
	return &table{def: t.def, flags: t.flags, byName: maps.Clone(t.byName), overrides: maps.Clone(t.overrides)}
}

// resolve returns the policy a take of key under name uses: the named (or
// default) policy, with key's override if it has one.
func (t *table) resolve(key, name string) (policyEntry, error) {
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

// Policy returns the named policy ("" names the default), with a copy of
// its limits. The error wraps bucket.ErrUnknownPolicy.
func (l *Limiter) Policy(name string) (bucket.Policy, error) {
	pe, err := l.policies.Load().resolve("", name)
	if err != nil {
		return bucket.Policy{}, err
	}
	return pe.public(), nil
}

// Policies returns every policy with its counts, by name.
func (l *Limiter) Policies() []bucket.PolicyInfo {
	t := l.policies.Load()
	out := make([]bucket.PolicyInfo, 0, len(t.byName))
	for _, name := range slices.Sorted(maps.Keys(t.byName)) {
		pe := t.byName[name]
		out = append(out, bucket.PolicyInfo{Policy: pe.public(), Default: name == t.def, Counts: pe.c.load()})
	}
	return out
}

// update applies change to a copy of the policy table and swaps it in.
// Changes are serialized by l.mu.
func (l *Limiter) update(change func(t *table) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.updateLocked(change)
}

func (l *Limiter) updateLocked(change func(t *table) error) error {
	next := l.policies.Load().clone()
	if err := change(next); err != nil {
		return err
	}
	l.policies.Store(next)
	return nil
}

// SetDefaultLimit makes lim the single limit of the default policy.
// Existing buckets keep the tokens of their last take (clamped to the new
// capacity) and earn at the new rate from that take on.
func (l *Limiter) SetDefaultLimit(lim bucket.Limit) error {
	if err := lim.Validate(); err != nil {
		return err
	}
	return l.update(func(t *table) error {
		pe := t.byName[t.def]
		pe.Limits = []bucket.Limit{lim}
		t.byName[t.def] = pe
		if t.def == bucket.DefaultPolicy {
			t.flags = lim
		}
		return nil
	})
}

// SetPolicies replaces every policy (a reload); def names the default (""
// means bucket.DefaultPolicy, made from the flags' limit when policies has
// none of that name). Existing buckets keep their tokens, clamped to the
// new capacities, and earn at the new rates from their last take on; counts of
// policies that keep their names go on. An invalid set changes nothing.
// Overrides of policies that no longer exist stay stored, and apply again
// if the policy comes back.
func (l *Limiter) SetPolicies(def string, policies []bucket.Policy) error {
	if def == "" {
		def = bucket.DefaultPolicy
	}
	seen := map[string]bool{}
	for _, p := range policies {
		if err := p.Validate(); err != nil {
			return err
		}
		if err := storage.PolicyNS(p.Name).Validate(); err != nil { // a name the store can hold
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
	return l.update(func(t *table) error {
		old := t.byName
		t.byName = make(map[string]policyEntry, len(policies)+1)
		t.def = def
		add := func(p bucket.Policy) {
			pe := policyEntry{Policy: bucket.Policy{Name: p.Name, Limits: slices.Clone(p.Limits), Shadow: p.Shadow, OnStoreError: p.OnStoreError}}
			if o, ok := old[p.Name]; ok {
				pe.c = o.c
			} else {
				pe.c = new(counter)
			}
			t.byName[p.Name] = pe
		}
		for _, p := range policies {
			add(p)
		}
		if !seen[def] {
			add(bucket.Policy{Name: def, Limits: []bucket.Limit{t.flags}})
		}
		return nil
	})
}

// sortOverrides sorts by policy, then key.
func sortOverrides(out []bucket.Override) {
	slices.SortFunc(out, func(a, b bucket.Override) int {
		if c := strings.Compare(a.Policy, b.Policy); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}
