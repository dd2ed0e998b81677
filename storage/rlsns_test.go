package storage_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// TestRLSNamespace: an RLS domain's bucket is apart from a policy and the
// cell bucket of the same key and name, survives a reopen (log replay and
// checkpoint), and a domain must have a name.
func TestRLSNamespace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bucketd.db")
	c := storetest.NewClock(t0)
	lim := []bucket.Limit{{Capacity: 3 * bucket.Token, Rate: bucket.PerSecond(1)}}
	rls := storage.RLSNS("x")
	db, err := storage.Open(path, testOptions(c))
	require.NoError(t, err)
	require.Equal(t, 2*bucket.Token, take(t, db, rls, "k", lim, bucket.Token).Remaining)
	require.Equal(t, 2*bucket.Token, take(t, db, storage.PolicyNS("x"), "k", lim, bucket.Token).Remaining)
	require.Equal(t, bucket.Token, take(t, db, rls, "k", lim, bucket.Token).Remaining)
	nss, err := db.Namespaces("k")
	require.NoError(t, err)
	require.Equal(t, []storage.Namespace{storage.PolicyNS("x"), rls}, nss)
	require.NoError(t, db.Close())

	db = mustOpenAt(t, path, testOptions(c))
	snap, ok := peek(t, db, rls, "k")
	require.True(t, ok)
	require.Equal(t, bucket.Token, snap.Remaining)

	_, err = db.Take(storage.RLSNS(""), "k", lim, bucket.Token, nil)
	require.ErrorIs(t, err, bucket.ErrInvalid)
}
