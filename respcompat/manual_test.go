package respcompat

import (
	"github.com/tidwall/redcon"
	"net"
	"os"
	"testing"
)

// TEMPORARY: serve on RESPCOMPAT_MANUAL until killed.
func TestManualServe(t *testing.T) {
	addr := os.Getenv("RESPCOMPAT_MANUAL")
	if addr == "" {
		t.Skip()
	}
	f := newFake()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(f, Config{RequirePass: os.Getenv("RESPCOMPAT_PASS"), Shutdown: func() { ln.Close() }})
	srv.Serve(ln)
}

// TEMPORARY: a bare redcon server answering a fixed CL.THROTTLE reply.
func TestManualBare(t *testing.T) {
	addr := os.Getenv("RESPCOMPAT_BARE")
	if addr == "" {
		t.Skip()
	}
	reply := []byte("*5\r\n:0\r\n:16\r\n:15\r\n:-1\r\n:2\r\n")
	redcon.ListenAndServe(addr, func(c redcon.Conn, cmd redcon.Command) { c.WriteRaw(reply) }, nil, nil)
}
