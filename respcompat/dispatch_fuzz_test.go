package respcompat

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bucketd/bucketd/storage"
	"github.com/stretchr/testify/require"
)

// sinkConn is a connection whose writes are kept, for the fuzz target to
// count replies that a command wrote rather than left in c.out.
type sinkConn struct {
	net.Conn // nil: the methods below are all that is called
	mu       sync.Mutex
	buf      bytes.Buffer
}

func (s *sinkConn) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}
func (s *sinkConn) take() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := bytes.Clone(s.buf.Bytes())
	s.buf.Reset()
	return b
}
func (s *sinkConn) Close() error                     { return nil }
func (s *sinkConn) CloseWrite() error                { return nil }
func (s *sinkConn) SetDeadline(time.Time) error      { return nil }
func (s *sinkConn) SetReadDeadline(time.Time) error  { return nil }
func (s *sinkConn) SetWriteDeadline(time.Time) error { return nil }
func (s *sinkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555} }
func (s *sinkConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6379} }

// countReplies counts the whole RESP replies in b; ok is false if b has
// anything else (a partial reply, stray bytes).
func countReplies(b []byte) (n int, ok bool) {
	for len(b) > 0 {
		rest, ok := skipReply(b)
		if !ok {
			return n, false
		}
		b = rest
		n++
	}
	return n, true
}

func skipReply(b []byte) ([]byte, bool) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 1 {
		return nil, false
	}
	line, rest := b[1:i], b[i+2:]
	switch b[0] {
	case '+', '-':
		return rest, !bytes.ContainsAny(line, "\r\n")
	case ':':
		_, err := strconv.ParseInt(string(line), 10, 64)
		return rest, err == nil
	case '$':
		n, err := strconv.Atoi(string(line))
		if err != nil || n < -1 {
			return nil, false
		}
		if n == -1 {
			return rest, true
		}
		if len(rest) < n+2 || string(rest[n:n+2]) != "\r\n" {
			return nil, false
		}
		return rest[n+2:], true
	case '*':
		n, err := strconv.Atoi(string(line))
		if err != nil || n < -1 {
			return nil, false
		}
		for range n {
			var ok bool
			if rest, ok = skipReply(rest); !ok {
				return nil, false
			}
		}
		return rest, true
	}
	return nil, false
}

// FuzzDispatch runs any commands, one a line with arguments split by
// spaces, on one connection of a server over the real store, with an admin
// token and a password so that the refusals are reached too: every command
// gets exactly one whole reply (a queued one QUIT... in MULTI too, EXEC one
// array), and nothing panics. MONITOR is left out: its stream is written
// by another goroutine, apart from the replies counted here.
func FuzzDispatch(f *testing.F) {
	for _, seed := range []string{
		"PING\nECHO x",
		"AUTH pw\nMULTI\nBUCKET.TAKE k 2\nCL.THROTTLE k 1 1 60\nHGET k\nEXEC",
		"AUTH pw\nWATCH k\nBUCKET.TAKE k\nMULTI\nDBSIZE\nEXEC\nUNWATCH",
		"AUTH admin tok\nMULTI\nFLUSHALL\nDEL k j\nHSET k tokens 3\nKEYS [a-z]*\nSCAN 0 MATCH * COUNT 5\nEXEC",
		"AUTH pw\nMULTI\nMULTI\nWATCH x\nSHUTDOWN\nEXEC\nEXEC\nDISCARD",
		"AUTH pw\nCONFIG GET *\nCONFIG SET capacity 10\nINFO\nCLIENT LIST\nCOMMAND COUNT\nHELLO 2 AUTH admin tok",
		"HELLO 3\nQUIT\nPING",
		"AUTH default pw\nHGETALL k\nTTL k\nTYPE k\nEXISTS k k\nRANDOMKEY\nTIME\nLASTSAVE\nSELECT 1",
	} {
		f.Add(seed)
	}
	st := newStack(f, storage.Options{})
	srv := New(st.lim, Config{RequirePass: "pw", AdminToken: "tok", Now: st.clock.Wall})
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > 4096 {
			return
		}
		sink := &sinkConn{}
		c := srv.newConn(sink)
		defer func() {
			if c.tx.watch != nil {
				c.tx.watch.Reset()
			}
		}()
		for line := range strings.SplitSeq(in, "\n") {
			args := bytes.Fields([]byte(line))
			if len(args) == 0 || eqFold(args[0], "monitor") {
				continue
			}
			c.exec(args)
			out := append(sink.take(), c.out...)
			c.out = c.out[:0]
			n, ok := countReplies(out)
			require.True(t, ok, "%q: not whole replies: %q", line, out)
			require.Equal(t, 1, n, "%q: replies %q", line, out)
		}
	})
}
