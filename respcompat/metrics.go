package respcompat

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// Metrics is what the server reports takes to (package metrics implements
// it; main.go passes it in Config). It must be cheap and safe for
// concurrent use.
type Metrics interface {
	// Decision counts a take (cost > 0) that the limiter decided: through
	// front "resp" (BUCKET.TAKE) or "cell" (CL.THROTTLE, whose policy is
	// ""), allowed or refused, under a shadow policy or not; d is the time
	// the limiter took. policy is valid only during the call.
	Decision(front, policy string, allowed, shadow bool, d time.Duration)
	// Decisions counts the takes of a batch of pipelined CL.THROTTLEs
	// (front "cell", policy ""), as many calls of Decision would: allowed
	// of them allowed and limited refused, each in d.
	Decisions(front, policy string, allowed, limited int, d time.Duration)
}

// The fronts of the RESP server, as Metrics.Decision names them.
const (
	frontRESP = "resp"
	frontCell = "cell"
)

// Stats are the server's counts, read by the metrics at each scrape and by
// INFO: both show the same numbers.
type Stats struct {
	Connected int    // clients connected now
	Accepted  uint64 // connections accepted
	Rejected  uint64 // connections refused for MaxClients
	// Commands counts the commands run (whatever their reply, an error
	// included), by lower-case name; every unknown command is counted
	// under "unknown", so the names are bounded.
	Commands map[string]uint64
}

// unknownName is the name Stats.Commands counts unknown commands under.
const unknownName = "unknown"

// Stats returns the server's counts.
func (s *Server) Stats() Stats {
	st := Stats{Commands: make(map[string]uint64, len(s.list)+1)}
	st.Connected, _ = s.counts()
	st.Accepted, st.Rejected = s.accepted.Load(), s.rejected.Load()
	for _, c := range s.list {
		if n := c.calls.Load(); n > 0 {
			st.Commands[c.name] = n
		}
	}
	if n := s.unknown.Load(); n > 0 {
		st.Commands[unknownName] = n
	}
	return st
}

// timer starts timing a take for the metrics or the access log: a reading
// of the monotonic clock only (time.Now reads the wall clock too), 0 when
// neither wants it.
func (c *conn) timer() time.Duration {
	if c.s.cfg.Metrics == nil && !c.logging {
		return 0
	}
	return time.Since(monoOrigin)
}

// monoOrigin is the origin of timer's readings.
var monoOrigin = time.Now()

// observe reports a take to the metrics as the limiter counts it: one of
// cost > 0 that was decided, whether or not it reached the disk. It notes
// the outcome for the access log line.
func (c *conn) observe(front string, policy string, cost bucket.Tokens, allowed, shadow bool, err error, start time.Duration) {
	if !counted(cost, err) {
		return
	}
	switch {
	case allowed:
		c.decision = "allowed"
	case shadow:
		c.decision = "shadow_limited"
	default:
		c.decision = "limited"
	}
	if m := c.s.cfg.Metrics; m != nil {
		m.Decision(front, policy, allowed, shadow, time.Since(monoOrigin)-start)
	}
}

// counted reports whether a take of cost that ended with err counts as a
// decision: one of cost > 0 that was decided, whether or not it reached
// the disk.
func counted(cost bucket.Tokens, err error) bool {
	return cost > 0 && (err == nil || errors.Is(err, bucket.ErrNotDurable))
}

// accessLog logs the command just run: its name, its key (none of its
// other arguments, so never a password), the decision of a take, and how
// long it took. c.logging says whether the line is wanted.
func (c *conn) accessLog(cmd *command, args [][]byte, start time.Time) {
	attrs := []slog.Attr{
		slog.String("front", "resp"),
		slog.String("addr", c.addr),
		slog.String("cmd", cmd.name),
	}
	if cmd.firstKey > 0 && cmd.firstKey < len(args) {
		attrs = append(attrs, slog.String("key", string(args[cmd.firstKey])))
	}
	if c.decision != "" {
		attrs = append(attrs, slog.String("decision", c.decision))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(start)))
	c.s.log.LogAttrs(context.Background(), c.s.accessLvl, "command", attrs...)
}
