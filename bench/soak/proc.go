package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// bucketd is the server under test, started by the soak.
type bucketd struct {
	cmd      *exec.Cmd
	httpAddr string
	respAddr string
	lines    chan string // its log, for the start line
}

var startedRE = regexp.MustCompile(`msg="bucketd started" http=(\S+) resp=(\S+)`)

// buildBucketd builds the binary from the module root into dir.
func buildBucketd(dir string) (string, error) {
	out := filepath.Join(dir, "bucketd")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = moduleRoot()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return out, nil
}

// moduleRoot is the directory of go.mod, from `go env GOMOD`.
func moduleRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "."
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// startBucketd starts bin on 127.0.0.1 port 0 with args, and waits for its
// start line (at most 30 s).
func startBucketd(bin string, args ...string) (*bucketd, error) {
	cmd := exec.Command(bin, append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &bucketd{cmd: cmd, lines: make(chan string, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := startedRE.FindStringSubmatch(sc.Text()); m != nil {
				b.lines <- sc.Text()
			} else if strings.Contains(sc.Text(), "level=ERROR") || strings.Contains(sc.Text(), "level=WARN") {
				fmt.Fprintln(os.Stderr, "bucketd:", sc.Text())
			}
		}
	}()
	select {
	case line := <-b.lines:
		m := startedRE.FindStringSubmatch(line)
		b.httpAddr, b.respAddr = m[1], m[2]
		return b, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("bucketd did not start within 30s")
	}
}

// stop sends SIGTERM and returns the exit code and how long it took.
func (b *bucketd) stop() (int, time.Duration, error) {
	start := time.Now()
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		return 0, 0, err
	}
	err := b.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), time.Since(start), nil
	}
	return 0, time.Since(start), err
}

// sample is the process's resource use at one instant.
type sample struct {
	rssKiB     int64
	threads    int64
	fds        int
	goroutines string // from /metrics or /debug/vars when bucketd has one; else "n/a"
}

func (s sample) String() string {
	return fmt.Sprintf("rss=%.1fMiB threads=%d fds=%d goroutines=%s", float64(s.rssKiB)/1024, s.threads, s.fds, s.goroutines)
}

// measure reads /proc/PID/status and /proc/PID/fd, and the goroutine count
// from bucketd's metrics when it serves them.
func (b *bucketd) measure() (sample, error) {
	pid := b.cmd.Process.Pid
	var s sample
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
		case "Threads":
			s.threads, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	s.goroutines = b.goroutines()
	return s, nil
}

// goroutines returns go_goroutines from GET /metrics (Prometheus text), or
// "n/a" when bucketd does not serve it.
func (b *bucketd) goroutines() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.httpAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "n/a"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok && resp.StatusCode == 200 {
			return strings.TrimSpace(v)
		}
	}
	return "n/a"
}
