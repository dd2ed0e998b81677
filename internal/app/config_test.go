package app

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseConfigBounds pins each numeric flag's bound from both sides: the
// last value accepted and the first refused, with the message that names it.
// The binary's tests (server/e2e) check a few of the refusals end to end.
func TestParseConfigBounds(t *testing.T) {
	tests := []struct {
		flag, ok, bad, wantErr string
	}{
		{"--sync-interval", "1ns", "0", "--sync-interval 0s: want a positive duration"},
		{"--maxclients", "1", "0", "--maxclients 0: want 1 or more"},
		{"--client-output-limit", "1", "0", "--client-output-limit 0: want a positive number of bytes"},
		{"--timeout", "0", "-1ns", "--timeout -1ns: want 0 (never) or a positive duration"},
		{"--shutdown-timeout", "0", "-1ns", "--shutdown-timeout -1ns: want 0 (no wait)"},
		{"--max-keys", "0", "-1", "--max-keys -1: want 0 (no bound) or more"},
		{"--max-log-bytes", "1", "0", "--max-log-bytes 0: want a positive number of bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			_, err := ParseConfig([]string{tt.flag, tt.ok}, nil, io.Discard)
			require.NoError(t, err, "%s %s is the last value allowed", tt.flag, tt.ok)
			_, err = ParseConfig([]string{tt.flag, tt.bad}, nil, io.Discard)
			require.Error(t, err, "%s %s is the first value refused", tt.flag, tt.bad)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}
