package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisPy is a script for Debian's python3 with redis-py (python3-redis):
// its default pipeline (transaction=True: MULTI ... EXEC), a pipeline
// whose EXEC fails on a queued error, and r.transaction() with WATCH,
// retried when another client changes the watched key in between. It
// prints one line per check.
const redisPy = `
import sys, redis
host, port = sys.argv[1], int(sys.argv[2])
r = redis.Redis(host=host, port=port)
other = redis.Redis(host=host, port=port)

p = r.pipeline()  # transactional by default
p.execute_command("CL.THROTTLE", "py", 2, 1, 3600)
p.execute_command("CL.THROTTLE", "py", 2, 1, 3600)
p.execute_command("CL.THROTTLE", "py", 2, 1, 3600)
res = p.execute()
print("pipeline", [x[0] for x in res])

p = r.pipeline()
p.execute_command("CL.THROTTLE", "py2", 2, 1, 3600)
p.execute_command("NOSUCHCOMMAND")
try:
    p.execute()
    print("execabort none")
except redis.exceptions.ResponseError as e:
    print("execabort", "EXECABORT" in str(e) or "unknown command" in str(e))
print("after-abort", r.hget("py2", "tokens"))

tries = []
def work(pipe):
    tokens = pipe.hget("wk", "tokens")
    if not tries:
        other.execute_command("CL.THROTTLE", "wk", 5, 1, 3600)  # changes the watched key
    tries.append(tokens)
    pipe.multi()
    pipe.execute_command("CL.THROTTLE", "wk", 5, 1, 3600)
r.execute_command("CL.THROTTLE", "wk", 5, 1, 3600)
res = r.transaction(work, "wk")
print("transaction", len(tries), res[0][0])
`

// TestRedisPyTransactions drives the binary with redis-py, the client the
// original Python service used: its default pipeline is MULTI/EXEC, a
// queued error aborts the whole EXEC (nothing of it runs), and
// r.transaction() retries when a WATCHed key changed.
func TestRedisPyTransactions(t *testing.T) {
	py := "/usr/bin/python3" // Debian's, where python3-redis installs
	if out, err := exec.Command(py, "-c", "import redis").CombinedOutput(); err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("redis-py is required in CI (apt-get install -y python3-redis): %v: %s", err, out)
		}
		t.Skipf("redis-py not installed (apt-get install -y python3-redis): %v", err)
	}
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"))
	host, port, ok := strings.Cut(p.respAddr, ":")
	require.True(t, ok)
	out, err := exec.Command(py, "-c", redisPy, host, port).CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	assert.Equal(t, []string{
		"pipeline [0, 0, 0]", // capacity 3 (max_burst 2 + 1): all three allowed, in one EXEC
		"execabort True",
		"after-abort None", // the aborted EXEC took nothing: py2 stays full (absent)
		"transaction 2 0",  // the first EXEC failed on the watch, the retry was allowed
	}, lines)
}
