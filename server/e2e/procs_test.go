package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var gomaxprocsRE = regexp.MustCompile(`gomaxprocs=(\d+)`)

// TestBinarySyncAlwaysRunsTwoProcsOnOneCPU: on one CPU (taskset), under
// --sync always, bucketd runs with two Ps, so that takes do not wait while
// a thread is blocked in a group's fdatasync; under --sync interval, or
// with GOMAXPROCS set by the user, it keeps the runtime's choice (one).
func TestBinarySyncAlwaysRunsTwoProcsOnOneCPU(t *testing.T) {
	taskset := needTool(t, "taskset", "util-linux")
	tests := []struct {
		name string
		env  []string
		sync string
		want string
	}{
		{"always", nil, "always", "2"},
		{"always, GOMAXPROCS=1 set", []string{"GOMAXPROCS=1"}, "always", "1"},
		{"interval", nil, "interval", "1"},
		{"interval, GOMAXPROCS=1 set", []string{"GOMAXPROCS=1"}, "interval", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(taskset, "-c", "0", bucketdBinary(t), "--http-addr", "127.0.0.1:0", "--resp-addr", "",
				"--data", filepath.Join(dir, "b.db"), "--sync", tt.sync)
			cmd.Env = append(os.Environ(), tt.env...)
			stderr, err := cmd.StderrPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			_, _, line := tailLog(stderr).started(t)
			m := gomaxprocsRE.FindStringSubmatch(line)
			require.NotNil(t, m, "the start line names gomaxprocs: %s", line)
			assert.Equal(t, tt.want, m[1])
		})
	}
}
