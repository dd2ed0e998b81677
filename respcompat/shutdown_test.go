package respcompat

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShutdownClientNotReading: a client pipelines commands with large
// replies and never reads, until its own writes block (the server is
// blocked writing to it and has stopped reading). Shutdown returns nil
// soon after shutdownWriteGrace, not at its context's end.
func TestShutdownClientNotReading(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	cmd := []byte(strings.Repeat(encode("COMMAND"), 64))
	for i := 0; ; i++ {
		require.Less(t, i, 1_000_000, "the server kept reading: never stuck")
		require.NoError(t, rc.nc.SetWriteDeadline(time.Now().Add(300*time.Millisecond)))
		if _, err := rc.nc.Write(cmd); err != nil {
			require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "write: %v", err)
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, ts.Shutdown(ctx))
	took := time.Since(start)
	t.Logf("Shutdown took %s", took)
	assert.Less(t, took, shutdownWriteGrace+2*time.Second)
}
