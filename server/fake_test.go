package server

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// fakeStore is a Store whose methods are function fields. A method whose
// field is nil returns an error, so a test that does not expect a call
// sees a 500.
type fakeStore struct {
	take           func(key, policy string, cost bucket.Tokens) (bucket.Result, error)
	reset          func(key, policy string) (bool, error)
	set            func(key, policy string, tokens bucket.Tokens) (bucket.Result, error)
	keys           func(prefix, after string, limit int) ([]string, string, error)
	policies       func() []bucket.PolicyInfo
	override       func(key, policy string) (bucket.Override, bool)
	overrides      func() []bucket.Override
	setOverride    func(o bucket.Override) error
	deleteOverride func(key, policy string) (bool, error)
}

func unset(method string) error { return errors.New("fakeStore: unexpected call of " + method) }

func (f *fakeStore) Take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	if f.take == nil {
		return bucket.Result{}, unset("Take")
	}
	return f.take(key, policy, cost)
}

func (f *fakeStore) Reset(key, policy string) (bool, error) {
	if f.reset == nil {
		return false, unset("Reset")
	}
	return f.reset(key, policy)
}

func (f *fakeStore) Set(key, policy string, tokens bucket.Tokens) (bucket.Result, error) {
	if f.set == nil {
		return bucket.Result{}, unset("Set")
	}
	return f.set(key, policy, tokens)
}

func (f *fakeStore) Keys(prefix, after string, limit int) ([]string, string, error) {
	if f.keys == nil {
		return nil, "", unset("Keys")
	}
	return f.keys(prefix, after, limit)
}

func (f *fakeStore) Policies() []bucket.PolicyInfo {
	if f.policies == nil {
		panic(unset("Policies"))
	}
	return f.policies()
}

func (f *fakeStore) Override(key, policy string) (bucket.Override, bool) {
	if f.override == nil {
		panic(unset("Override"))
	}
	return f.override(key, policy)
}

func (f *fakeStore) Overrides() []bucket.Override {
	if f.overrides == nil {
		panic(unset("Overrides"))
	}
	return f.overrides()
}

func (f *fakeStore) SetOverride(o bucket.Override) error {
	if f.setOverride == nil {
		return unset("SetOverride")
	}
	return f.setOverride(o)
}

func (f *fakeStore) DeleteOverride(key, policy string) (bool, error) {
	if f.deleteOverride == nil {
		return false, unset("DeleteOverride")
	}
	return f.deleteOverride(key, policy)
}

// memStore is a Store in memory on the real bucket maths, at a clock that
// moves only when a test says: what storage does, without the disk. The
// first policy it is made with is the default.
type memStore struct {
	mu        sync.Mutex // guards every field
	now       time.Time
	def       string
	policies  map[string]bucket.PolicyInfo
	buckets   map[bucketID][]bucket.State
	overrides map[bucketID]bucket.Override
}

type bucketID struct{ key, policy string }

func newMemStore(now time.Time, policies ...bucket.Policy) *memStore {
	m := &memStore{
		now:       now,
		def:       policies[0].Name,
		policies:  map[string]bucket.PolicyInfo{},
		buckets:   map[bucketID][]bucket.State{},
		overrides: map[bucketID]bucket.Override{},
	}
	for _, p := range policies {
		m.policies[p.Name] = bucket.PolicyInfo{Policy: p, Default: p.Name == m.def}
	}
	return m
}

// advance moves the clock on by d.
func (m *memStore) advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
}

// policyLocked returns the named policy ("" is the default) with key's
// override applied.
func (m *memStore) policyLocked(key, name string) (bucket.Policy, error) {
	if name == "" {
		name = m.def
	}
	info, ok := m.policies[name]
	if !ok {
		return bucket.Policy{}, fmt.Errorf("memstore: %w %q", bucket.ErrUnknownPolicy, name)
	}
	p := info.Policy
	if o, ok := m.overrides[bucketID{key, name}]; ok {
		p.Limits = o.Limits
	}
	return p, nil
}

// statesLocked returns the states of key's bucket under p: full ones when
// it has none.
func (m *memStore) statesLocked(key string, p bucket.Policy) []bucket.State {
	s := slices.Clone(m.buckets[bucketID{key, p.Name}])
	if len(s) != len(p.Limits) {
		s = make([]bucket.State, len(p.Limits))
		for i, l := range p.Limits {
			s[i] = bucket.Full(l, m.now)
		}
	}
	return s
}

func (m *memStore) Take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cost < 0 {
		return bucket.Result{}, fmt.Errorf("memstore: cost %s: %w", cost, bucket.ErrInvalid)
	}
	p, err := m.policyLocked(key, policy)
	if err != nil {
		return bucket.Result{}, err
	}
	s := m.statesLocked(key, p)
	each := make([]bucket.Decision, len(p.Limits))
	res := bucket.Result{Policy: p, Decision: p.Take(s, m.now, cost, each)}
	if len(p.Limits) > 1 {
		res.Limits = each
	}
	if cost > 0 {
		info := m.policies[p.Name]
		if res.Allowed {
			m.buckets[bucketID{strings.Clone(key), p.Name}] = s
			info.Allowed++
		} else {
			info.Denied++
		}
		m.policies[p.Name] = info
	}
	return res, nil
}

func (m *memStore) Reset(key, policy string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if policy == "" {
		found := false
		for id := range m.buckets {
			if id.key == key {
				delete(m.buckets, id)
				found = true
			}
		}
		return found, nil
	}
	p, err := m.policyLocked(key, policy)
	if err != nil {
		return false, err
	}
	id := bucketID{key, p.Name}
	_, found := m.buckets[id]
	delete(m.buckets, id)
	return found, nil
}

func (m *memStore) Set(key, policy string, tokens bucket.Tokens) (bucket.Result, error) {
	m.mu.Lock()
	p, err := m.policyLocked(key, policy)
	if err != nil {
		m.mu.Unlock()
		return bucket.Result{}, err
	}
	s := make([]bucket.State, len(p.Limits))
	for i, l := range p.Limits {
		s[i] = bucket.Set(l, m.now, tokens)
	}
	m.buckets[bucketID{strings.Clone(key), p.Name}] = s
	m.mu.Unlock()
	return m.Take(key, policy, 0)
}

func (m *memStore) Keys(prefix, after string, limit int) ([]string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var all []string
	for id := range m.buckets {
		if strings.HasPrefix(id.key, prefix) && id.key > after {
			all = append(all, id.key)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) <= limit {
		return all, "", nil
	}
	return all[:limit], all[limit-1], nil
}

func (m *memStore) Policies() []bucket.PolicyInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []bucket.PolicyInfo
	for _, name := range slices.Sorted(maps.Keys(m.policies)) {
		out = append(out, m.policies[name])
	}
	return out
}

func (m *memStore) Override(key, policy string) (bucket.Override, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if policy == "" {
		policy = m.def
	}
	o, ok := m.overrides[bucketID{key, policy}]
	return o, ok
}

func (m *memStore) Overrides() []bucket.Override {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.overrides))
	slices.SortFunc(out, func(a, b bucket.Override) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.Policy, b.Policy))
	})
	return out
}

func (m *memStore) SetOverride(o bucket.Override) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o.Policy == "" {
		o.Policy = m.def
	}
	if _, ok := m.policies[o.Policy]; !ok {
		return fmt.Errorf("memstore: %w %q", bucket.ErrUnknownPolicy, o.Policy)
	}
	if err := (bucket.Policy{Name: o.Policy, Limits: o.Limits}).Validate(); err != nil {
		return err
	}
	m.overrides[bucketID{o.Key, o.Policy}] = o
	return nil
}

func (m *memStore) DeleteOverride(key, policy string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if policy == "" {
		policy = m.def
	}
	id := bucketID{key, policy}
	_, ok := m.overrides[id]
	delete(m.overrides, id)
	return ok, nil
}
