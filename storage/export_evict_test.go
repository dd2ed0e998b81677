package storage

import "fmt"

// ShardCount is the number of shards, for tests of Options.MaxKeys.
const ShardCount = shardCount

// KeysInOneShard returns n keys that hash to one shard of db.
func KeysInOneShard(db *DB, n int) []string {
	var keys []string
	want, _, _ := db.table.locate("anchor")
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("k%d", i)
		if s, _, _ := db.table.locate(k); s == want {
			keys = append(keys, k)
		}
	}
	return keys
}
