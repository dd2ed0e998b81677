// Package e2e_test runs the real bucketd binary: built once per run, started
// on 127.0.0.1 port 0, driven over HTTP and RESP, stopped with signals. The
// tests live here because the top level of the repository holds only
// main.go; they test main.go's wiring end to end.
//
// The files hold: binary_test.go, building and running the binary;
// http_test.go, the HTTP front; resp_test.go, the RESP front through
// redis-cli; config_test.go, flags, environment and the policies file;
// durability_test.go, the data file across restarts, signals and SIGKILL.
package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// binDir holds the binary that bucketdBinary builds; TestMain removes it.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bucketdBinary builds the real binary once per test run, from the module
// this package is in, and returns its path.
//
// The build runs in a subprocess, which Go's test cache cannot see: on its
// own, `go test ./...` would answer "ok (cached)" after a change that breaks
// the binary. So the build first records its inputs as inputs of this
// test: the cache stores every file a test opens or stats and every
// environment variable it reads (through the os package's testlog hooks,
// active only inside m.Run, which is why this is not done in TestMain),
// and reruns the test when one of them changes.
func bucketdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		if err := recordBuildInputs(root); err != nil {
			buildErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "bucketd-bin"); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "bucketd")
		build := exec.Command("go", "build", "-o", binPath, ".")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// moduleRoot returns the directory of the go.mod above the working
// directory (this package's, under go test).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("no go.mod above the working directory")
}

// buildEnv are the environment variables that change what `go build` makes
// of the same sources; reading them makes their values part of the cache key.
var buildEnv = []string{
	"GOFLAGS", "GOOS", "GOARCH", "GOAMD64", "GOARM", "GOARM64", "GO386",
	"CGO_ENABLED", "CC", "GOEXPERIMENT", "GOTOOLCHAIN", "GOWORK", "GOROOT",
	"GOPATH", "GOMODCACHE",
}

// recordBuildInputs makes every source of the module under root an input of
// this test run, for Go's test cache:
//   - it reads every directory of the module (as the go command sees it:
//     not testdata, nor names starting with "." or "_", nor nested
//     modules). The cache keeps each listing with every entry's size and
//     modification time, so a new, removed, edited or touched file in any
//     of them invalidates the cached result: .go files, go.mod, go.sum and
//     embedded files such as server/openapi.json. Files that do not go into
//     the binary (other packages' tests, the README in the root) invalidate
//     it too: a needless rerun, never a hidden break;
//   - it opens every .go file, go.mod and go.sum, for which the cache also
//     refuses to store a result when the file changed less than 2 s before,
//     as a modification time may be too coarse to see a second edit;
//   - it reads buildEnv.
//
// Modules in the module cache are pinned by go.sum, and the Go toolchain is
// part of the test binary's own cache key.
func recordBuildInputs(root string) error {
	for _, k := range buildEnv {
		os.Getenv(k)
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") && name != "go.mod" && name != "go.sum" {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		return f.Close()
	})
}

// proc is a running bucketd binary.
type proc struct {
	cmd       *exec.Cmd
	log       *logTail // its standard error
	httpAddr  string
	respAddr  string
	startLine string
}

// startBinary starts bucketd on 127.0.0.1 port 0 (HTTP and RESP) with args,
// and waits for its start line.
func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	return startBinaryIn(t, t.TempDir(), nil, args...)
}

// startBinaryIn is startBinary in the directory dir, with env added to the
// environment.
func startBinaryIn(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bucketdBinary(t), append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &proc{cmd: cmd, log: tailLog(stderr)}
	p.httpAddr, p.respAddr, p.startLine = p.log.started(t)
	return p
}

// runBinary runs bucketd in dir with args to its end (at most a minute),
// and returns its exit code and output.
func runBinary(t *testing.T, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bucketdBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	require.NoError(t, err)
	return 0, out.String(), errOut.String()
}

// stop sends sig and returns the exit code (-1 when the signal killed it).
func (p *proc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	err := p.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

// startedRE reads the addresses from the start line.
var startedRE = regexp.MustCompile(`msg="bucketd started" http=(\S+) resp=(\S+).*`)

// logTail reads bucketd's log lines from a reader in the background, until
// its end, and lets a test wait for the next line that matches a pattern.
// It never blocks the writer, however many lines no one waits for.
type logTail struct {
	mu      sync.Mutex // guards the fields below
	lines   []string
	eof     bool
	changed chan struct{} // closed, and replaced, when lines or eof change
	next    int           // the first line that wait has not looked at
}

func tailLog(r io.Reader) *logTail {
	l := &logTail{changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.eof = true
		close(l.changed)
		l.mu.Unlock()
	}()
	return l
}

// wait returns the submatches of the first line after those already looked
// at that matches re. It fails the test if the log ends first or no such
// line comes within 30 s.
func (l *logTail) wait(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		for l.next < len(l.lines) {
			line := l.lines[l.next]
			l.next++
			if m := re.FindStringSubmatch(line); m != nil {
				l.mu.Unlock()
				return m
			}
		}
		eof, changed := l.eof, l.changed
		var last string // the end of the log, to say why it ended
		if eof {
			last = strings.Join(l.lines[max(0, len(l.lines)-20):], "\n")
		}
		l.mu.Unlock()
		if eof {
			t.Fatalf("bucketd's log ended before a line matching %q; it ends:\n%s", re, last)
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("no log line matching %q within 30s", re)
		}
	}
}

// started waits for the start line, and returns the HTTP and RESP
// addresses.
func (l *logTail) started(t *testing.T) (httpAddr, respAddr, line string) {
	t.Helper()
	m := l.wait(t, startedRE)
	return m[1], m[2], m[0]
}
