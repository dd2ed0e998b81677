package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/bucketd/bucketd/storage"
)

// ErrDamaged is what `bucketd check` returns for a damaged file: exit 1,
// after the report.
var ErrDamaged = errors.New("the data file is damaged")

// RunCheck is `bucketd check FILE`: it reads the data file without
// writing it and prints whether it is sound, and if not, each page, key
// and override that is damaged. It returns nil for a sound file (exit 0),
// and an error otherwise (exit 1).
func RunCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bucketd check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", time.Second, "how long to wait for a bucketd that holds the file")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: bucketd check [--timeout D] FILE\n\n"+
			"Checks the data file FILE (stop bucketd first) and reports the pages, keys and overrides that are damaged:\n"+
			"exit 0 if it is sound, 1 if not. `bucketd --repair --data FILE` then starts without what is damaged.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("check: want one data file")
	}
	path := fs.Arg(0)
	r, err := storage.Check(path, *timeout)
	if err != nil {
		return err
	}
	if r.Sound() {
		fmt.Fprintf(stdout, "%s: sound (format %d: %d pages, %d keys, %d overrides)\n", path, r.Format, r.Pages, r.Keys, r.Overrides)
		return nil
	}
	fmt.Fprintf(stdout, "%s: damaged (format %d): %d problems\n", path, r.Format, len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	if r.Structural {
		fmt.Fprintf(stdout, "bbolt's own structure is damaged: `bucketd --repair --data %s` rebuilds the file from the pages and overrides it can still reach (copying the damaged file aside first), and logs what it drops; or restore a backup\n", path)
		return fmt.Errorf("%s: %w", path, ErrDamaged)
	}
	fmt.Fprintf(stdout, "sound: %d pages, %d keys, %d overrides; `bucketd --repair --data %s` starts without the rest, copying the damaged file aside first\n",
		r.Pages, r.Keys, r.Overrides, path)
	return fmt.Errorf("%s: %w", path, ErrDamaged)
}
