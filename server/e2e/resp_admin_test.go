package e2e_test

import (
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRESPAdminTokenFromTheFlag: --admin-token guards the RESP admin
// commands of the binary too; AUTH admin <token> unlocks them.
func TestRESPAdminTokenFromTheFlag(t *testing.T) {
	rcli := needRedisCLI(t)
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--admin-token", "t0ken")
	cli := redisCLI(t, rcli, p.respAddr)
	assert.Equal(t, "NOPERM this user has no permissions to run the 'flushall' command", cli("FLUSHALL"))
	assert.Equal(t, "OK", cli("--user", "admin", "--pass", "t0ken", "--no-auth-warning", "FLUSHALL"))
	assert.Equal(t, "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n"+
		"NOPERM this user has no permissions to run the 'flushall' command",
		cli("--user", "admin", "--pass", "nope", "--no-auth-warning", "FLUSHALL"), "a wrong token leaves the default user")
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestExposedWithoutSecretsWarns: listening beyond loopback without
// --requirepass and --admin-token is logged at start, once each.
func TestExposedWithoutSecretsWarns(t *testing.T) {
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--resp-addr", "0.0.0.0:0")
	p.log.next = 0 // the warnings come before the start line
	p.log.wait(t, regexp.MustCompile(`level=WARN msg="resp listens beyond this machine without --requirepass`))
	p.log.wait(t, regexp.MustCompile(`level=WARN msg="resp listens beyond this machine without --admin-token`))
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
