package storage

import (
	"fmt"
	"maps"

	"github.com/bucketd/bucketd/bucket"
)

// policyTable is an immutable set of named policies; changes swap in a new
// table.
type policyTable struct {
	byName map[string]bucket.Policy
}

func newPolicyTable(def bucket.Limit) *policyTable {
	return &policyTable{byName: map[string]bucket.Policy{
		bucket.DefaultPolicy: {Name: bucket.DefaultPolicy, Limits: []bucket.Limit{def}},
	}}
}

// Policy returns the named policy; "" names the default. The error wraps
// bucket.ErrUnknownPolicy.
func (db *DB) Policy(name string) (bucket.Policy, error) {
	if name == "" {
		name = bucket.DefaultPolicy
	}
	p, ok := db.policies.Load().byName[name]
	if !ok {
		return bucket.Policy{}, fmt.Errorf("%w %q", bucket.ErrUnknownPolicy, name)
	}
	return p, nil
}

// Policies returns every policy, by name.
func (db *DB) Policies() map[string]bucket.Policy {
	return maps.Clone(db.policies.Load().byName)
}

// SetDefaultLimit makes l the single limit of the default policy. Existing
// buckets keep their tokens (clamped to the new capacity) and refill at the
// new rate from their next take.
func (db *DB) SetDefaultLimit(l bucket.Limit) error {
	if err := l.Validate(); err != nil {
		return err
	}
	for {
		old := db.policies.Load()
		next := &policyTable{byName: maps.Clone(old.byName)}
		p := next.byName[bucket.DefaultPolicy]
		p.Name = bucket.DefaultPolicy
		p.Limits = []bucket.Limit{l}
		next.byName[bucket.DefaultPolicy] = p
		if db.policies.CompareAndSwap(old, next) {
			return nil
		}
	}
}
