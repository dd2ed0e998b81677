package respcompat

import "time"

// shutdownWriteGrace bounds, from the start of Shutdown, the writing of
// replies that a client does not read: a client that pipelines and never
// reads would otherwise hold Shutdown, blocked in a write, for the whole
// shutdown timeout. The commands it sent have run (they are written to the
// store); only their replies are dropped, as Redis drops every client's
// pending output at SHUTDOWN. A client that reads gets its replies within
// the grace.
const shutdownWriteGrace = 500 * time.Millisecond

// boundWritesForShutdown sets the write deadline of a client when Shutdown
// begins.
func (c *conn) boundWritesForShutdown() {
	c.nc.SetWriteDeadline(time.Now().Add(shutdownWriteGrace))
}
