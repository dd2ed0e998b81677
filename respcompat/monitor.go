package respcompat

// MONITOR: every command run, as Redis streams it to its monitors, with
// AUTH's and HELLO AUTH's secrets redacted and the commands flagged admin
// (SAVE, SHUTDOWN, MONITOR...) not shown, as Redis does.

import (
	"slices"
	"strconv"
	"sync"
)

// monitor is a MONITOR client's stream. Commands are appended by the
// goroutines that run them and written by the monitor's own writer, so a
// slow monitor never slows them; one that falls behind by more than
// Config.OutputLimit is disconnected.
type monitor struct {
	c    *conn
	mu   sync.Mutex // guards buf and gone
	buf  []byte
	gone bool
	wake chan struct{} // one pending wake-up at most
}

// startMonitor makes c a monitor, whose stream starts with first: its
// writer runs until c closes.
func (s *Server) startMonitor(c *conn, first []byte) {
	m := &monitor{c: c, wake: make(chan struct{}, 1), buf: first}
	m.wake <- struct{}{}
	s.monMu.Lock()
	s.mons = append(s.mons, m)
	s.nmon.Store(int32(len(s.mons)))
	s.monMu.Unlock()
	c.mon = m
	s.wg.Add(1)
	go m.run(s)
}

// stopMonitor ends c's stream, when c closes.
func (s *Server) stopMonitor(m *monitor) {
	s.monMu.Lock()
	s.mons = slices.DeleteFunc(s.mons, func(x *monitor) bool { return x == m })
	s.nmon.Store(int32(len(s.mons)))
	s.monMu.Unlock()
	m.mu.Lock()
	m.gone = true
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run writes what was appended until the monitor is gone.
func (m *monitor) run(s *Server) {
	defer s.wg.Done()
	var out []byte
	for range m.wake {
		m.mu.Lock()
		out, m.buf = m.buf, out[:0]
		gone := m.gone
		m.mu.Unlock()
		if gone {
			return
		}
		if len(out) > 0 {
			if err := m.c.writeLocked(out); err != nil {
				m.c.nc.Close() // the client's goroutine sees it and ends
				return
			}
		}
	}
}

// feed shows a command run by c to every monitor.
func (s *Server) feed(c *conn, cmd *command, args [][]byte) {
	if slices.Contains(cmd.flags, "admin") {
		return
	}
	now := s.now()
	line := make([]byte, 0, 64)
	line = append(line, '+')
	line = strconv.AppendInt(line, now.Unix(), 10)
	line = append(line, '.')
	us := strconv.Itoa(now.Nanosecond() / 1000)
	for range 6 - len(us) {
		line = append(line, '0')
	}
	line = append(line, us...)
	line = append(line, " [0 "...)
	line = append(line, c.addr...)
	line = append(line, ']')
	redact := redacted(cmd, args)
	for i, a := range args {
		line = append(line, ' ')
		if redact(i) {
			a = []byte("(redacted)")
		}
		line = appendRepr(line, a)
	}
	line = append(line, "\r\n"...)

	s.monMu.Lock()
	mons := s.mons
	s.monMu.Unlock()
	for _, m := range mons {
		m.mu.Lock()
		over := !m.gone && len(m.buf)+len(line) > s.outLimit
		if !m.gone && !over {
			m.buf = append(m.buf, line...)
		}
		m.mu.Unlock()
		if over {
			s.log.Warn("respcompat: a MONITOR client fell behind by more than the output limit; disconnecting it",
				"addr", m.c.addr, "limit", s.outLimit)
			m.c.nc.Close()
			continue
		}
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// redacted returns which arguments of a command MONITOR hides: AUTH's
// (all but its name) and HELLO's AUTH username and password, as Redis does.
func redacted(cmd *command, args [][]byte) func(i int) bool {
	switch cmd.name {
	case "auth":
		return func(i int) bool { return i > 0 }
	case "hello":
		return func(i int) bool {
			for j := 2; j+2 < len(args); j++ {
				if eqFold(args[j], "auth") && (i == j+1 || i == j+2) {
					return true
				}
			}
			return false
		}
	}
	return func(int) bool { return false }
}

// appendRepr appends a quoted as Redis's sdscatrepr does.
func appendRepr(b, a []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, ch := range a {
		switch ch {
		case '\\', '"':
			b = append(b, '\\', ch)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\a':
			b = append(b, '\\', 'a')
		case '\b':
			b = append(b, '\\', 'b')
		default:
			if ch >= ' ' && ch <= '~' {
				b = append(b, ch)
			} else {
				b = append(b, '\\', 'x', hex[ch>>4], hex[ch&15])
			}
		}
	}
	return append(b, '"')
}

func cmdMonitor(c *conn, args [][]byte) {
	if c.mon != nil {
		return // Redis ignores a second MONITOR
	}
	// The replies before MONITOR go first; then the monitor is registered
	// with its +OK as the first bytes of its stream, so that every command
	// run once the client has read +OK is shown (registering after writing
	// +OK would miss the commands run in between).
	if err := c.write(); err != nil {
		c.quit = true
		return
	}
	c.s.startMonitor(c, []byte("+OK\r\n"))
}
