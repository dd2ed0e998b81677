package respcompat

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// epoch is the fake clock's start: a fixed instant, so tests never read the
// real clock for bucket maths.
var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeStore is an in-memory Store on the real bucket maths and a fake
// clock the test moves with advance. It keeps a bucket the way the real
// store is documented to: created by a take that takes something, or by
// SetTokens; under the policy or ad hoc limit it was last taken with.
type fakeStore struct {
	mu       sync.Mutex // guards everything below
	now      time.Time
	policies map[string]bucket.Policy // by name
	def      string                   // the default policy's name; "" is "default"
	counts   map[string]bucket.Counts // by policy name: takes, not peeks, as the real store counts
	buckets  map[string]*fakeBucket
	lastSave time.Time
	saves    int
	saveErr  error
	saveHook func() // if set, Save calls it first, without the lock
	err      error  // returned by every method when set
}

type fakeBucket struct {
	policy  bucket.Policy
	states  []bucket.State
	updated time.Time
}

// newFake returns a store whose default policy is 15 tokens refilling 1
// every 3 s, with other policies: "burst" (5 tokens, 1/s), "shadow" (a
// shadow policy of 1 token a minute) and "daily" (10 tokens at 1/s, and 20
// a day).
func newFake() *fakeStore {
	return &fakeStore{
		now:      epoch,
		lastSave: epoch.Add(-time.Hour),
		buckets:  make(map[string]*fakeBucket),
		counts:   make(map[string]bucket.Counts),
		policies: map[string]bucket.Policy{
			"default": {Name: "default", Limits: []bucket.Limit{{Capacity: 15 * bucket.Token, Rate: bucket.Every(3 * time.Second)}}},
			"burst":   {Name: "burst", Limits: []bucket.Limit{{Capacity: 5 * bucket.Token, Rate: bucket.PerSecond(1)}}},
			"shadow":  {Name: "shadow", Shadow: true, Limits: []bucket.Limit{{Capacity: bucket.Token, Rate: bucket.Every(time.Minute)}}},
			"daily": {Name: "daily", Limits: []bucket.Limit{
				{Capacity: 10 * bucket.Token, Rate: bucket.PerSecond(1)},
				{Capacity: 20 * bucket.Token, Rate: bucket.Rate{Tokens: 20 * bucket.Token, Per: 24 * time.Hour}},
			}},
		},
	}
}

func (f *fakeStore) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeStore) policyLocked(name string) (bucket.Policy, error) {
	if name == "" {
		name = cmp.Or(f.def, bucket.DefaultPolicy)
	}
	p, ok := f.policies[name]
	if !ok {
		return bucket.Policy{}, fmt.Errorf("fake: %w: %q", bucket.ErrUnknownPolicy, name)
	}
	return p, nil
}

// takeLocked takes cost from key under p, starting a full bucket if the key
// has none or had other limits, and keeps the bucket if the take changed it.
func (f *fakeStore) takeLocked(key string, p bucket.Policy, cost bucket.Tokens) bucket.Result {
	b := f.buckets[key]
	var states []bucket.State
	if b != nil && slices.Equal(b.policy.Limits, p.Limits) {
		states = slices.Clone(b.states)
	} else {
		for _, l := range p.Limits {
			states = append(states, bucket.Full(l, f.now))
		}
	}
	var each []bucket.Decision
	if len(p.Limits) > 1 {
		each = make([]bucket.Decision, len(p.Limits))
	}
	d := p.Take(states, f.now, cost, each)
	if d.Allowed && cost > 0 {
		f.buckets[key] = &fakeBucket{policy: p, states: states, updated: f.now}
	}
	return bucket.Result{Policy: p, Decision: d, Limits: each}
}

func (f *fakeStore) Take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return bucket.Result{}, f.err
	}
	p, err := f.policyLocked(policy)
	if err != nil {
		return bucket.Result{}, err
	}
	res := f.takeLocked(key, p, cost)
	if cost > 0 {
		n := f.counts[p.Name]
		if res.Allowed {
			n.Allowed++
		} else {
			n.Denied++
		}
		f.counts[p.Name] = n
	}
	return res, nil
}

func (f *fakeStore) Throttle(key string, l bucket.Limit, cost bucket.Tokens) (bucket.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return bucket.Decision{}, f.err
	}
	if err := l.Validate(); err != nil {
		return bucket.Decision{}, err
	}
	p := bucket.Policy{Name: "cl.throttle", Limits: []bucket.Limit{l}}
	return f.takeLocked(key, p, cost).Decision, nil
}

func (f *fakeStore) Peek(key string) (bucket.Snapshot, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return bucket.Snapshot{}, false, f.err
	}
	b := f.buckets[key]
	if b == nil {
		return bucket.Snapshot{}, false, nil
	}
	var each []bucket.Decision
	if len(b.policy.Limits) > 1 {
		each = make([]bucket.Decision, len(b.policy.Limits))
	}
	d := b.policy.Take(slices.Clone(b.states), f.now, 0, each)
	return bucket.Snapshot{Policy: b.policy, Decision: d, Limits: each, UpdatedAt: b.updated}, true, nil
}

func (f *fakeStore) SetTokens(key string, tokens bucket.Tokens) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	b := f.buckets[key]
	if b == nil {
		p, err := f.policyLocked("")
		if err != nil {
			return err
		}
		b = &fakeBucket{policy: p}
		b.states = make([]bucket.State, len(b.policy.Limits))
		f.buckets[key] = b
	}
	for i, l := range b.policy.Limits {
		b.states[i] = bucket.Set(l, f.now, tokens)
	}
	b.updated = f.now
	return nil
}

func (f *fakeStore) Delete(keys ...string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for _, k := range keys {
		if _, ok := f.buckets[k]; ok {
			delete(f.buckets, k)
			n++
		}
	}
	return n, nil
}

// Scan's cursor is an index into the sorted keys.
func (f *fakeStore) Scan(cursor uint64, count int) ([]string, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, 0, f.err
	}
	keys := slices.Sorted(maps.Keys(f.buckets))
	if cursor >= uint64(len(keys)) {
		return nil, 0, nil
	}
	end := min(cursor+uint64(count), uint64(len(keys)))
	next := end
	if end == uint64(len(keys)) {
		next = 0
	}
	return keys[cursor:end], next, nil
}

func (f *fakeStore) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.buckets)
}

func (f *fakeStore) FlushAll() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	clear(f.buckets)
	return nil
}

func (f *fakeStore) Save() error {
	f.mu.Lock()
	hook := f.saveHook
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.saveErr != nil {
		return f.saveErr
	}
	f.saves++
	f.lastSave = f.now
	return nil
}

func (f *fakeStore) LastSave() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastSave
}

func (f *fakeStore) Policy(name string) (bucket.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return bucket.Policy{}, f.err
	}
	return f.policyLocked(name)
}

func (f *fakeStore) SetDefaultLimit(l bucket.Limit) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if err := l.Validate(); err != nil {
		return err
	}
	p, err := f.policyLocked("")
	if err != nil {
		return err
	}
	p.Limits = []bucket.Limit{l}
	f.policies[p.Name] = p
	return nil
}

// Policies ignores f.err, as the real store's cannot fail.
func (f *fakeStore) Policies() []bucket.PolicyInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	def := cmp.Or(f.def, bucket.DefaultPolicy)
	var out []bucket.PolicyInfo
	for _, name := range slices.Sorted(maps.Keys(f.policies)) {
		out = append(out, bucket.PolicyInfo{Policy: f.policies[name], Default: name == def, Counts: f.counts[name]})
	}
	return out
}

var (
	errDisk        = errors.New("fake: disk on fire")
	errClosedStore = fmt.Errorf("fake: %w", bucket.ErrClosed)
)
