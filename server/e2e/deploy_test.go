package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// needTool returns the path of a program; without it the test is skipped,
// except in CI (CI=true), where it fails: .ci/run installs it with apt
// package pkg.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("%s is required in CI: %v (apt-get install -y %s)", name, err, pkg)
		}
		t.Skipf("%s is not installed (apt-get install -y %s): %v", name, pkg, err)
	}
	return path
}

// deployDir returns the repository's deploy/ directory.
func deployDir(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	require.NoError(t, err)
	return filepath.Join(root, "deploy")
}

// runTool runs a program to its end (at most a minute) and returns its
// combined output, failing the test if it fails.
func runTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// TestDeployPrometheusFiles: promtool accepts the scrape config and the
// alerting rules, and the rules' unit tests (deploy/alerts_test.yml) pass:
// each alert fires on the series it is about, and not on the others.
func TestDeployPrometheusFiles(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	dir := deployDir(t)
	runTool(t, dir, promtool, "check", "config", "prometheus.yml")
	assert.Contains(t, runTool(t, dir, promtool, "check", "rules", "alerts.yml"), "SUCCESS")
	runTool(t, dir, promtool, "test", "rules", "alerts_test.yml")
}

// TestDeployAlertsUseRealMetrics: every bucketd_ metric an alert names is
// one that /metrics of the real binary serves.
func TestDeployAlertsUseRealMetrics(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(deployDir(t), "alerts.yml"))
	require.NoError(t, err)
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"))
	fams := scrape(t, p.httpAddr)
	names := regexp.MustCompile(`bucketd_[a-z_]+`).FindAllString(string(rules), -1)
	require.NotEmpty(t, names)
	for _, n := range names {
		_, ok := fams[n]
		assert.True(t, ok, "alerts.yml names %s, which /metrics does not serve", n)
	}
}

// TestDeploySystemdUnit: systemd-analyze accepts the unit, whose service
// runs as a user of its own in a state directory, hardened; and every flag
// its ExecStart passes is a flag of bucketd.
func TestDeploySystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(deployDir(t), "bucketd.service"))
	require.NoError(t, err)
	for _, want := range []string{"DynamicUser=yes", "User=bucketd", "StateDirectory=bucketd",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"CapabilityBoundingSet=\n", "ExecReload=/bin/kill -HUP $MAINPID"} {
		assert.Contains(t, string(unit), want)
	}
	exec := regexp.MustCompile(`(?m)^ExecStart=(\S+)(.*)$`).FindSubmatch(unit)
	require.NotNil(t, exec)
	_, _, help := runBinary(t, t.TempDir(), nil, "--help")
	for _, f := range regexp.MustCompile(`--([a-z-]+)`).FindAllSubmatch(exec[2], -1) {
		assert.Contains(t, help, "\n  -"+string(f[1])+" ", "ExecStart's --%s", f[1])
	}

	analyze := needTool(t, "systemd-analyze", "systemd")
	// verify wants ExecStart's binary to exist: point it at the one built.
	local := strings.Replace(string(unit), "ExecStart="+string(exec[1]), "ExecStart="+bucketdBinary(t), 1)
	path := filepath.Join(t.TempDir(), "bucketd.service")
	require.NoError(t, os.WriteFile(path, []byte(local), 0o644))
	runTool(t, filepath.Dir(path), analyze, "verify", path)
}
