package respcompat

import (
	"strconv"
	"testing"
	"time"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SAVE writes the data file at once: LASTSAVE moves to the store's clock.
// The interval flush is an hour away, so that only SAVE writes here.
func TestSave(t *testing.T) {
	t.Parallel()
	st := newStack(t, storage.Options{SyncInterval: time.Hour})
	ts := serve(t, st, st.lim, Config{})
	c := ts.client(t)
	ctx := ctxT(t)

	assert.Equal(t, storetest.T0.Unix(), c.LastSave(ctx).Val(), "when the store opened")
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "joe").Err())
	ts.clock.Advance(time.Minute)
	assert.Equal(t, storetest.T0.Unix(), c.LastSave(ctx).Val(), "nothing written since")
	require.NoError(t, c.Save(ctx).Err())
	assert.Equal(t, storetest.T0.Add(time.Minute).Unix(), c.LastSave(ctx).Val())
	_, f := infoFields(t, c.Info(ctx, "persistence").Val())
	assert.Equal(t, strconv.FormatInt(storetest.T0.Add(time.Minute).Unix(), 10), f["rdb_last_save_time"])
}

// BGSAVE saves on its own goroutine, which Shutdown waits for; while it
// runs, another BGSAVE or a SAVE is refused.
func TestBgsave(t *testing.T) {
	t.Parallel()
	st := newStack(t, storage.Options{SyncInterval: time.Hour})
	h := holdSaves(st.lim)
	ts := serve(t, st, h, Config{})
	c := ts.client(t)
	ctx := ctxT(t)

	assert.Equal(t, "Background saving started", c.BgSave(ctx).Val())
	<-h.entered
	assert.EqualError(t, c.BgSave(ctx).Err(), "ERR Background save already in progress")
	assert.EqualError(t, c.Save(ctx).Err(), "ERR Background save already in progress")
	_, f := infoFields(t, c.Info(ctx, "persistence").Val())
	assert.Equal(t, "1", f["rdb_bgsave_in_progress"])
	ts.clock.Advance(time.Minute)
	close(h.release)
	require.NoError(t, ts.Shutdown(ctxT(t)))
	assert.False(t, ts.saving.Load(), "Shutdown waited for the BGSAVE")
	assert.Equal(t, storetest.T0.Add(time.Minute).UnixNano(), st.lim.LastSave().UnixNano(), "which saved")

	ts2 := start(t, Config{})
	rc := ts2.raw(t)
	assert.Equal(t, "-ERR syntax error\r\n", rc.do("BGSAVE", "NOW"))
	assert.Equal(t, "+Background saving started\r\n", rc.do("BGSAVE", "SCHEDULE"))
}

func TestShutdownCommand(t *testing.T) {
	t.Parallel()
	t.Run("enabled", func(t *testing.T) {
		called := make(chan struct{}, 4)
		ts := start(t, Config{Shutdown: func() { called <- struct{}{} }})
		ctx := ctxT(t)
		rc := ts.raw(t)
		assert.Equal(t, "-ERR syntax error\r\n", rc.do("SHUTDOWN", "SAVE", "NOSAVE"))
		assert.Equal(t, "-ERR syntax error\r\n", rc.do("SHUTDOWN", "LATER"))
		assert.Equal(t, "-ERR No shutdown in progress.\r\n", rc.do("SHUTDOWN", "ABORT"))
		assert.Empty(t, called)

		// go-redis takes the closed connection as success.
		require.NoError(t, ts.client(t).Shutdown(ctx).Err())
		<-called
		require.NoError(t, ts.client(t).ShutdownNoSave(ctx).Err())
		<-called
		// Replies before SHUTDOWN in the same pipeline are written; none
		// after.
		rc = ts.raw(t)
		rc.send(encode("PING") + encode("SHUTDOWN", "NOW", "FORCE") + encode("PING"))
		assert.Equal(t, "+PONG\r\n", rc.expectEOF())
		<-called
	})
	t.Run("disabled", func(t *testing.T) {
		ts := start(t, Config{})
		rc := ts.raw(t)
		assert.Equal(t, "-ERR SHUTDOWN is disabled on this server\r\n", rc.do("SHUTDOWN"))
		assert.Equal(t, "+PONG\r\n", rc.do("PING"))
	})
}

func TestTime(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	ts := start(t, Config{Now: func() time.Time { return at }})
	got, err := ts.client(t).Time(ctxT(t)).Result()
	require.NoError(t, err)
	assert.True(t, got.Equal(at.Truncate(time.Microsecond)), "got %v", got)
}
