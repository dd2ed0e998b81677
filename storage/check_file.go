package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileReport is what Check found in a data file.
type FileReport struct {
	// Format is the file's format (1 to 3); 0 when it could not be read.
	Format int
	// Pages, Keys and Overrides count what was read soundly.
	Pages, Keys, Overrides int
	// Problems names each thing damaged, one line each: the pages and the
	// keys they seem to hold, the overrides, the structure. Empty: sound.
	Problems []string
	// Structural is set when bbolt's own structure is damaged: Repair
	// cannot open such a file.
	Structural bool
}

// Sound reports whether the file has no problems.
func (r *FileReport) Sound() bool { return len(r.Problems) == 0 }

// Check reads the data file at path, without writing it, and reports what
// is damaged: bbolt's structure (checked before bbolt maps the file), the
// checksum of every page and override, the records in each page, and the
// meta digest. It fails only when it cannot read the file: missing, in use
// by a running bucketd (ErrInUse), or not a database (ErrNotDatabase).
func Check(path string, timeout time.Duration) (*FileReport, error) {
	r := &FileReport{}
	w, err := verifyLocked(path, timeout)
	switch {
	case errors.Is(err, ErrInUse):
		return nil, fmt.Errorf("storage: %s is %w: stop bucketd to check it", path, ErrInUse)
	case errors.Is(err, errNotBolt):
		return nil, fmt.Errorf("storage: %s is %w (%v)", path, ErrNotDatabase, err)
	case err != nil && w == nil:
		return nil, fmt.Errorf("storage: check %s: %w", path, err)
	case err != nil:
		r.Problems = append(r.Problems, "bbolt's structure: "+err.Error())
		r.Structural = true
		return r, nil
	}
	r.Problems = append(r.Problems, w.warnings...)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("storage: check %s: %w", path, err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaName)
		if meta == nil {
			return fmt.Errorf("%w (no meta bucket)", ErrNotDatabase)
		}
		if f := meta.Get(formatKey); len(f) == 1 {
			r.Format = int(f[0])
		}
		switch {
		case r.Format > fileFormat:
			return fmt.Errorf("%w (format %d)", ErrNewerFormat, r.Format)
		case r.Format < formatPages:
			r.Problems = append(r.Problems, fmt.Sprintf("meta: unknown format %x", meta.Get(formatKey)))
			return nil
		}
		sealed := r.Format == fileFormat
		var want digest
		if sealed {
			if want, err = readDigest(meta); err != nil {
				r.Problems = append(r.Problems, "meta: "+err.Error())
			}
		}
		var d damage
		var got digest
		for _, name := range [][]byte{pagesName, overridesName} {
			b := tx.Bucket(name)
			if b == nil {
				if sealed {
					r.Problems = append(r.Problems, fmt.Sprintf("bbolt bucket %q is missing", name))
				}
				continue
			}
			_ = b.ForEach(func(id, stored []byte) error {
				v := stored
				if sealed {
					if v, err = unseal(id, stored); err != nil {
						if bytes.Equal(name, pagesName) {
							return d.page(true, id, stored, err)
						}
						return d.override(true, id, err)
					}
				}
				if bytes.Equal(name, overridesName) {
					if e, err := decode(v); err != nil || len(e.subs) != 1 || bytes.IndexByte(id, 0) < 0 {
						return d.override(true, id, fmt.Errorf("unreadable: %v", err))
					}
					r.Overrides++
					if sealed {
						got.overrides.add(stored)
					}
					return nil
				}
				if len(id) != 2 || int(binary.BigEndian.Uint16(id)) >= pageCount {
					return d.page(true, id, stored, errors.New("not a page id"))
				}
				r.Pages++
				if sealed {
					got.pages.add(stored)
				}
				var bad []string
				err := decodePage(v, func(k, rec []byte) error {
					if _, err := decode(rec); err != nil {
						bad = append(bad, fmt.Sprintf("key %q (%v)", k, err))
					} else {
						r.Keys++
					}
					return nil
				})
				if err != nil {
					bad = append(bad, fmt.Sprintf("the rest of the page (%v)", err))
				}
				if len(bad) > 0 {
					return d.records(true, id, bad)
				}
				return nil
			})
		}
		if sealed && d.empty() && len(r.Problems) == 0 {
			_ = d.tally(true, got, want)
		}
		r.Problems = append(r.Problems, d.notes...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: %s is %w", path, err)
	}
	return r, nil
}
