package storetest

import (
	"sync"
	"time"
)

// Clock is a storage.Clock that moves only when told: Advance moves the
// wall and monotonic readings together, as time passing does; StepWall
// moves the wall reading alone, as an NTP step or a VM restore does. It is
// safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	wall   time.Time
	mono   time.Duration
	timers []timer
}

type timer struct {
	at time.Duration // the Mono reading at which it fires
	ch chan time.Time
}

// NewClock returns a clock whose wall reading is wall.
func NewClock(wall time.Time) *Clock { return &Clock{wall: wall, mono: time.Hour} }

// Wall implements storage.Clock.
func (c *Clock) Wall() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall
}

// Mono implements storage.Clock.
func (c *Clock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

// After implements storage.Clock: the channel receives once Advance has
// moved the clock by d.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.wall
		return ch
	}
	c.timers = append(c.timers, timer{at: c.mono + d, ch: ch})
	return ch
}

// Advance moves both readings forward by d (d >= 0), and fires the timers
// that are due.
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		panic("storetest: Clock.Advance with a negative duration; use StepWall")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = c.wall.Add(d)
	c.mono += d
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at <= c.mono {
			t.ch <- c.wall
		} else {
			kept = append(kept, t)
		}
	}
	clear(c.timers[len(kept):])
	c.timers = kept
}

// StepWall moves the wall reading alone by d, forwards or backwards.
func (c *Clock) StepWall(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = c.wall.Add(d)
}

// Timers returns how many timers are waiting: a test can wait for a
// goroutine to have armed its timer before it advances the clock.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
