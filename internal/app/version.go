package app

import (
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/bucketd/bucketd/metrics"
)

// BuildInfo describes this binary from what the Go toolchain recorded in
// it: the module version ("(devel)" for a build from a checkout), the VCS
// revision with "+dirty" when the tree had changes, and the Go version.
func BuildInfo() metrics.Build {
	b := metrics.Build{Version: "(unknown)", Revision: "unknown", GoVersion: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = info.GoVersion
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		b.Revision += "+dirty"
	}
	return b
}

// PrintVersion writes the line of --version.
func PrintVersion(w io.Writer) error {
	b := BuildInfo()
	_, err := fmt.Fprintf(w, "bucketd %s (revision %s, %s)\n", b.Version, b.Revision, b.GoVersion)
	return err
}

// NewLogger returns the logger of --log-format (text or json) and
// --log-level, writing to w.
func NewLogger(format string, level slog.Level, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
