package app

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/bucketd/bucketd/storage"
)

func TestMinProcs(t *testing.T) {
	always := Config{Sync: storage.SyncAlways}
	tests := []struct {
		name    string
		cfg     Config
		env     []string
		current int
		want    int
	}{
		{"always on one P", always, nil, 1, 2},
		{"always on one P, other variables set", always, []string{"GOGC=200", "XGOMAXPROCS=1"}, 1, 2},
		{"always, GOMAXPROCS set by the user", always, []string{"GOMAXPROCS=1"}, 1, 1},
		{"always on two Ps", always, nil, 2, 2},
		{"always on eight Ps", always, nil, 8, 8},
		{"interval on one P", Config{Sync: storage.SyncInterval}, nil, 1, 1},
		{"interval, GOMAXPROCS set by the user", Config{Sync: storage.SyncInterval}, []string{"GOMAXPROCS=1"}, 1, 1},
		{"the Redis store on one P", Config{Sync: storage.SyncAlways, Store: "redis://127.0.0.1:6379"}, nil, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, MinProcs(tt.cfg, tt.env, tt.current))
		})
	}
}
