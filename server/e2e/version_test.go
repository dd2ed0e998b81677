package e2e_test

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinaryVersion: --version prints the module version, the VCS revision
// and the Go version on one line, and exits 0 without opening anything.
func TestBinaryVersion(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runBinary(t, dir, []string{"BUCKETD_VERSION=true"}, "--version")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `^bucketd \S+ \(revision \S+, go\S+\)\n$`, out)
	assert.Contains(t, out, runtime.Version(), "built by the toolchain running the test")
	assert.Empty(t, errOut)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "--version created no data file")

	// BUCKETD_VERSION is not a way to ask for the version: bucketd serves.
	p := startBinaryIn(t, dir, []string{"BUCKETD_VERSION=true"})
	assert.NotEmpty(t, p.httpAddr)
}

// TestBinaryHelpEndsWithANewline, so a shell prompt starts on its own line.
func TestBinaryHelpEndsWithANewline(t *testing.T) {
	code, _, out := runBinary(t, t.TempDir(), nil, "--help")
	require.Equal(t, 0, code)
	assert.True(t, strings.HasSuffix(out, "\n"), "%q", out[max(0, len(out)-40):])
	assert.False(t, strings.HasSuffix(out, "\n\n\n"))
}

// helpFlagRE finds the flags in --help: "  -name type" at the start of a line.
var helpFlagRE = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)

// TestREADMEListsEveryFlag: the table of "Running in production" in the
// README has a row for every flag that --help lists, with its environment
// variable, and no row for a flag that does not exist: it cannot drift.
func TestREADMEListsEveryFlag(t *testing.T) {
	code, _, help := runBinary(t, t.TempDir(), nil, "--help")
	require.Equal(t, 0, code)
	var flags []string
	for _, m := range helpFlagRE.FindAllStringSubmatch(help, -1) {
		flags = append(flags, m[1])
	}
	require.Greater(t, len(flags), 15, "the flags of --help:\n%s", help)

	root, err := moduleRoot()
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, table, ok := strings.Cut(string(readme), "\n### Every flag\n")
	require.True(t, ok, `README.md has no "### Every flag" section`)
	if end := strings.Index(table, "\n#"); end >= 0 {
		table = table[:end]
	}
	rowRE := regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\| (`BUCKETD_[A-Z0-9_]+`|—) \\|")
	rows := map[string]string{}
	for _, m := range rowRE.FindAllStringSubmatch(table, -1) {
		rows[m[1]] = m[2]
	}
	for _, f := range flags {
		env, ok := rows[f]
		if !assert.True(t, ok, "--%s is not in the README's flag table", f) {
			continue
		}
		want := "`BUCKETD_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_")) + "`"
		if f == "check-config" || f == "version" { // commands, not settings
			want = "—"
		}
		assert.Equal(t, want, env, "--%s", f)
		delete(rows, f)
	}
	assert.Empty(t, rows, "rows of flags that --help does not list")

	// The Configuration section's table has every flag too.
	_, conf, ok := strings.Cut(string(readme), "\n## Configuration\n")
	require.True(t, ok)
	conf, _, _ = strings.Cut(conf, "\n## ")
	for _, f := range flags {
		assert.Contains(t, conf, "| `--"+f+"` |", "--%s in the Configuration table", f)
	}
}
