package respcompat

// The commands that run the server: TIME, SAVE, BGSAVE, LASTSAVE and
// SHUTDOWN. INFO is in info.go, CONFIG in configcmd.go.

import (
	"errors"

	"github.com/bucketd/bucketd/bucket"
)

func cmdTime(c *conn, args [][]byte) {
	now := c.s.now()
	c.array(2)
	c.bulkInt(now.Unix())
	c.bulkInt(int64(now.Nanosecond() / 1000))
}

func cmdSave(c *conn, args [][]byte) {
	if c.s.saving.Load() {
		c.err("ERR Background save already in progress")
		return
	}
	if err := c.store.Save(); err != nil {
		if errors.Is(err, bucket.ErrNotDurable) { // as Redis answers a failed SAVE
			c.s.log.Error("respcompat: SAVE failed", "addr", c.addr, "err", err)
			c.err("ERR the data file could not be written; every change stays in memory and is retried: " + err.Error())
			return
		}
		c.writeError(err)
		return
	}
	c.ok()
}

// BGSAVE [SCHEDULE] saves on a goroutine that Shutdown waits for.
func cmdBgsave(c *conn, args [][]byte) {
	if len(args) > 2 || len(args) == 2 && !eqFold(args[1], "schedule") {
		c.syntaxErr()
		return
	}
	s := c.s
	if !s.saving.CompareAndSwap(false, true) {
		c.err("ERR Background save already in progress")
		return
	}
	s.wg.Add(1) // this connection is counted too, so Shutdown cannot have finished waiting
	go func() {
		defer s.wg.Done()
		defer s.saving.Store(false)
		if err := s.store.Save(); err != nil {
			s.log.Error("respcompat: BGSAVE failed", "err", err)
		}
	}()
	c.status("Background saving started")
}

func cmdLastSave(c *conn, args [][]byte) { c.int(c.store.LastSave().Unix()) }

// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] calls Config.Shutdown and closes the
// connection without a reply, as Redis does. bucketd always writes every
// bucket to disk as it stops, so NOSAVE is accepted and changes nothing.
func cmdShutdown(c *conn, args [][]byte) {
	var save, nosave bool
	for _, a := range args[1:] {
		switch {
		case eqFold(a, "nosave"):
			nosave = true
		case eqFold(a, "save"):
			save = true
		case eqFold(a, "now"), eqFold(a, "force"):
		case eqFold(a, "abort"):
			c.err("ERR No shutdown in progress.")
			return
		default:
			c.syntaxErr()
			return
		}
	}
	if save && nosave {
		c.syntaxErr()
		return
	}
	if c.s.cfg.Shutdown == nil {
		c.err("ERR SHUTDOWN is disabled on this server")
		return
	}
	c.s.log.Info("respcompat: SHUTDOWN requested", "addr", c.addr)
	c.s.cfg.Shutdown()
	c.quit = true
}
