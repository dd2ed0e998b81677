package limiter

import (
	"fmt"
	"slices"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// RefreshOverrides reads the overrides again from the store and makes them
// the ones in force: with a store that several instances share (Redis),
// an override set or deleted through one instance reaches the others this
// way. It reports whether they changed. On an error the overrides in force
// stay.
func (l *Limiter) RefreshOverrides() (bool, error) {
	os, err := l.store.Overrides()
	if err != nil {
		return false, fmt.Errorf("limiter: refresh overrides: %w", err)
	}
	next := make(map[overrideKey][]bucket.Limit, len(os))
	for _, o := range os {
		if o.NS.Kind == storage.KindPolicy {
			next[overrideKey{o.NS.Name, o.Key}] = slices.Clone(o.Limits)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.policies.Load().overrides
	same := len(cur) == len(next)
	for k, ls := range next {
		if c, ok := cur[k]; !ok || !slices.Equal(c, ls) {
			same = false
			break
		}
	}
	if same {
		return false, nil
	}
	return true, l.updateLocked(func(t *table) error {
		t.overrides = next
		return nil
	})
}
