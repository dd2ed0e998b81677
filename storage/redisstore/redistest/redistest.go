// Package redistest starts real redis-server processes for tests: a
// standalone server on a unix socket, or a Cluster on loopback ports.
package redistest

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// need returns the path of a program, skipping the test when it is
// missing, or failing it in CI.
func need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (apt-get install redis-server)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	cmd  *exec.Cmd
	args []string
	// URL is its address for redisstore.Open.
	URL string
	// Addr is its host:port, or the unix socket's path.
	Addr string
	Dir  string
	tls  bool
}

// Start starts a standalone redis-server listening on a unix socket in a
// temporary directory, with no persistence; it is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	s := &Server{t: t, Dir: dir, Addr: sock, URL: "unix://" + sock,
		args: []string{"--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir}}
	s.start()
	return s
}

// StartTCP starts a standalone redis-server on a free loopback port.
func StartTCP(t testing.TB, extra ...string) *Server {
	t.Helper()
	dir := t.TempDir()
	port := FreePort(t)
	s := &Server{t: t, Dir: dir, Addr: "127.0.0.1:" + strconv.Itoa(port), URL: fmt.Sprintf("redis://127.0.0.1:%d", port),
		args: append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, extra...)}
	s.start()
	return s
}

// StartTLS starts a standalone redis-server that accepts only TLS, on a
// free loopback port, with the server certificate and key in PEM files.
// Its URL is rediss://.
func StartTLS(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	dir := t.TempDir()
	port := FreePort(t)
	s := &Server{t: t, Dir: dir, Addr: "127.0.0.1:" + strconv.Itoa(port), URL: fmt.Sprintf("rediss://127.0.0.1:%d", port), tls: true,
		args: []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1", "--tls-cert-file", certFile,
			"--tls-key-file", keyFile, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir}}
	s.start()
	return s
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	cmd := exec.Command(need(t, "redis-server"), s.args...)
	cmd.Dir = s.Dir
	log, err := os.Create(filepath.Join(s.Dir, fmt.Sprintf("redis-%d.log", time.Now().UnixNano())))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	s.cmd = cmd
	t.Cleanup(s.Stop)
	s.wait()
}

// wait waits, up to 10 s, for the server to accept connections.
func (s *Server) wait() {
	network := "tcp"
	if strings.HasPrefix(s.Addr, "/") {
		network = "unix"
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial(network, s.Addr)
		if err == nil && s.tls {
			c = tls.Client(c, &tls.Config{InsecureSkipVerify: true}) // only to see it answer
		}
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server at %s did not start: %v", s.Addr, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a child process, not ordering events
	}
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same address.
func (s *Server) Restart() {
	s.Stop()
	s.start()
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartCluster starts a three-master Redis Cluster on loopback ports and
// returns its nodes' addresses.
func StartCluster(t testing.TB) []string {
	t.Helper()
	cli := need(t, "redis-cli")
	var addrs []string
	for range 3 {
		dir := t.TempDir()
		s := StartTCP(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
		addrs = append(addrs, s.Addr)
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create: %s", out)
	// Wait until every node reports the cluster ok.
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		for {
			o, _ := exec.Command(cli, "-h", host, "-p", port, "cluster", "info").Output()
			if strings.Contains(string(o), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok on %s: %s", a, o)
			}
			time.Sleep(50 * time.Millisecond) // polling redis-server, not ordering events
		}
	}
	return addrs
}
