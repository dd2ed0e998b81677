package server

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUIServed(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{AdminToken: "sesame"})
	for _, tt := range []struct{ target, ctype, contains string }{
		{"/ui", "text/html; charset=utf-8", "<h1>bucketd</h1>"},
		{"/ui/", "text/html; charset=utf-8", "<h1>bucketd</h1>"},
		{"/ui/app.js", "text/javascript; charset=utf-8", `"use strict"`},
		{"/ui/app.css", "text/css; charset=utf-8", "font-family"},
		{"/ui/uPlot.iife.min.js", "text/javascript; charset=utf-8", "var uPlot="},
		{"/ui/uPlot.min.css", "text/css; charset=utf-8", ".uplot"},
		{"/ui/uPlot.LICENSE", "text/plain; charset=utf-8", "MIT"},
	} {
		t.Run(tt.target, func(t *testing.T) {
			r := get(t, s, tt.target)
			require.Equal(t, 200, r.status, "open without the token: the API asks for it")
			assert.Equal(t, tt.ctype, r.header.Get("Content-Type"))
			assert.Contains(t, r.body, tt.contains)
			assert.Equal(t, uiCSP, r.header.Get("Content-Security-Policy"))
			assert.Contains(t, r.header.Get("Content-Security-Policy"), "script-src 'self';")
			assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
		})
	}
	for _, target := range []string{"/ui/VENDOR.md", "/ui/nope.js", "/ui/..%2Fserver.go", "/ui/a/b"} {
		r := get(t, s, target)
		assert.Equal(t, 404, r.status, target)
		assert.Equal(t, "application/json", r.header.Get("Content-Type"), target)
	}
	assert.Equal(t, 405, do(t, s, "POST", "/ui", "").status)
}

// TestUIAssetsExist: every file the page refers to is served, and the
// page has no inline script or style, which its CSP would block.
func TestUIAssetsExist(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	page := get(t, s, "/ui").body
	refs := regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"`).FindAllStringSubmatch(page, -1)
	require.Len(t, refs, 4)
	for _, m := range refs {
		assert.Equal(t, 200, get(t, s, m[1]).status, m[1])
	}
	assert.NotRegexp(t, `<script>|<script [^>]*>[^<]|<style|\sstyle="|\son[a-z]+="`, page)
}

// TestUIVendoredSums checks the vendored files against the SHA-256 sums
// that VENDOR.md records.
func TestUIVendoredSums(t *testing.T) {
	t.Parallel()
	f, err := os.Open("ui/VENDOR.md")
	require.NoError(t, err)
	defer f.Close()
	row := regexp.MustCompile("^\\| `([^`]+)` \\|.*\\| `([0-9a-f]{64})` \\|$")
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		m := row.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		b, err := os.ReadFile("ui/" + m[1])
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		assert.Equal(t, m[2], hex.EncodeToString(sum[:]), m[1])
		n++
	}
	assert.Equal(t, 3, n, "rows of VENDOR.md's table")
}

// TestUIKeyEncoded: /ui is the dashboard; the key "ui" is /u%69.
func TestUIKeyEncoded(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	r := get(t, s, "/u%69")
	require.Equal(t, 200, r.status)
	assert.Equal(t, `{"detail":"OK"}`, r.body)
	assert.Equal(t, 9*T, e.take(t, "ui", "", 0).Remaining, "a token taken from the key ui")
}
