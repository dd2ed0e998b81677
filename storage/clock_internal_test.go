package storage

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSystemClockWallMono: a take reads the system clock once for both its
// instant and its record's wall offset; that one reading agrees with Wall
// and Mono read around it.
func TestSystemClockWallMono(t *testing.T) {
	c := SystemClock()
	wm, ok := c.(wallMonoClock)
	require.True(t, ok, "the system clock reads wall and mono at once")
	w0, m0 := c.Wall().UnixNano(), c.Mono()
	w, m := wm.wallMono()
	w1, m1 := c.Wall().UnixNano(), c.Mono()
	assert.LessOrEqual(t, m0, m)
	assert.LessOrEqual(t, m, m1)
	// Wall may be stepped between readings; within a second it is not here.
	assert.InDelta(t, float64(w0), float64(w), float64(time.Second))
	assert.InDelta(t, float64(w1), float64(w), float64(time.Second))
}

// TestNowOffset: nowOffset's instant and offset are those of now and
// wallOffset, on the system clock (one reading) as on any other clock.
func TestNowOffset(t *testing.T) {
	origin := time.Now()
	db := &DB{clock: systemClock{origin: origin}, epochWall: 1_000_000, epochMono: 5 * time.Millisecond}
	before := db.now()
	tt, off := db.nowOffset()
	after := db.now()
	assert.LessOrEqual(t, before, tt)
	assert.LessOrEqual(t, tt, after)
	assert.InDelta(t, float64(db.wallOffset()), float64(off), float64(time.Second))
	assert.InDelta(t, float64(time.Now().UnixNano()), float64(tt+off), float64(time.Second))

	fc := fixedClock{wall: time.Unix(100, 0), mono: 7 * time.Second}
	db = &DB{clock: fc, epochWall: 50, epochMono: 2 * time.Second}
	tt, off = db.nowOffset()
	assert.Equal(t, int64(50+5*time.Second), tt)
	assert.Equal(t, int64(100*time.Second)-tt, off)
}

// fixedClock is a Clock that reads Wall and Mono separately, and never moves.
type fixedClock struct {
	wall time.Time
	mono time.Duration
}

func (c fixedClock) Wall() time.Time                        { return c.wall }
func (c fixedClock) Mono() time.Duration                    { return c.mono }
func (c fixedClock) After(d time.Duration) <-chan time.Time { return nil }
