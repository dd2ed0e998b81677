package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/policyfile"
	"github.com/bucketd/bucketd/rlsconfig"
)

// CheckConfig checks the policies file at path, or the RLS configuration
// when path is a directory, and prints a line to stdout if it is valid. An
// invalid file's error lists every problem.
func CheckConfig(path string, stdout io.Writer) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return CheckRLSConfig(path, stdout)
	}
	c, err := policyfile.Load(path)
	if err != nil {
		return err
	}
	names := make([]string, len(c.Policies))
	for i, p := range c.Policies {
		names[i] = p.Name
	}
	noun := "policies"
	if len(names) == 1 {
		noun = "policy"
	}
	_, err = fmt.Fprintf(stdout, "%s: ok, %d %s: %s\n", path, len(names), noun, strings.Join(names, ", "))
	return err
}

// Reloader returns the function that reloads the policies from path (a
// SIGHUP, or the HTTP admin API): it reads the file, and swaps in its
// policies if it is valid; existing buckets keep their tokens. An invalid
// file changes nothing. Either way it logs the outcome, since a reload is
// an operator's event whoever asked for it, and returns the error for the
// caller to report. Reloads run one at a time, so the file read last is the
// one in force.
func Reloader(path string, lim *limiter.Limiter, log *slog.Logger) func() error {
	var mu sync.Mutex
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		c, err := policyfile.Load(path)
		if err == nil {
			err = lim.SetPolicies(c.Default, c.Policies)
		}
		if err != nil {
			log.Error("reload failed, the old policies stay in force", "config", path, "err", err)
			return err
		}
		log.Info("policies reloaded", "config", path, Policies(lim))
		return nil
	}
}

// Policies returns log attributes of the policies in force: their names and
// the default's.
func Policies(lim *limiter.Limiter) slog.Attr {
	var names []string
	var def string
	for _, p := range lim.Policies() {
		names = append(names, p.Name)
		if p.Default {
			def = p.Name
		}
	}
	return slog.Group("", "policies", strings.Join(names, ","), "default", def)
}

// PolicyNames returns the names of the policies in force.
func PolicyNames(lim *limiter.Limiter) []string {
	var names []string
	for _, p := range lim.Policies() {
		names = append(names, p.Name)
	}
	return names
}

// CheckRLSConfig checks the RLS configuration directory dir, and prints a
// line to stdout if it is valid.
func CheckRLSConfig(dir string, stdout io.Writer) error {
	c, err := rlsconfig.Load(dir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: ok, %d rate limits in %d domains: %s\n", dir, c.Rules(), len(c.Domains()), strings.Join(c.Domains(), ", "))
	return err
}

// RLSReloader returns the function that reloads the RLS configuration from
// dir: a valid one replaces the one in force, and buckets keep their
// tokens; an invalid one changes nothing. It logs the outcome and returns
// the error. Reloads run one at a time.
func RLSReloader(dir string, lim *limiter.Limiter, log *slog.Logger) func() error {
	var mu sync.Mutex
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		c, err := rlsconfig.Load(dir)
		if err != nil {
			log.Error("rls reload failed, the old configuration stays in force", "rls_config", dir, "err", err)
			return err
		}
		lim.SetRLSConfig(c)
		log.Info("rls configuration reloaded", "rls_config", dir, RLSDomains(c))
		return nil
	}
}

// RLSDomains returns a log attribute of the RLS domains in force.
func RLSDomains(c *rlsconfig.Config) slog.Attr {
	return slog.String("rls_domains", strings.Join(c.Domains(), ","))
}

// JoinReloads returns a reload that runs a (if not nil) then b, and returns
// both errors: each file is reloaded or kept on its own.
func JoinReloads(a, b func() error) func() error {
	if a == nil {
		return b
	}
	return func() error { return errors.Join(a(), b()) }
}
