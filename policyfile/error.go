package policyfile

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bucketd/bucketd/bucket"
)

// Error is a policies file that is not valid. It lists every problem found,
// in the order of the file; after 50, the last says that there were more.
// It wraps bucket.ErrInvalid.
type Error struct {
	Name     string // the file, as given to Parse; "" prints as "config"
	Problems []Problem
}

// Problem is one thing wrong in a policies file.
type Problem struct {
	// Line and Column are 1-based; 0 when unknown (both are unknown for an
	// empty file and for input that is not UTF-8).
	Line, Column int
	// Field is the path of the field at fault, such as
	// "policies.paid.limits[1].rate"; "" for the file as a whole.
	Field string
	Msg   string
}

// Error returns one problem per line, each as
// "FILE:LINE:COLUMN: FIELD: MESSAGE", after a count when there are several.
func (e *Error) Error() string {
	var b strings.Builder
	if len(e.Problems) > 1 {
		fmt.Fprintf(&b, "%s: %d problems:", e.name(), len(e.Problems))
	}
	for i, p := range e.Problems {
		if i > 0 || len(e.Problems) > 1 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Where(p))
		b.WriteString(p.Msg)
	}
	return b.String()
}

// Where returns p's position in the form "FILE:LINE:COLUMN: FIELD: ", with
// the parts that are unknown left out.
func (e *Error) Where(p Problem) string {
	s := e.name()
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
		if p.Column > 0 {
			s += ":" + strconv.Itoa(p.Column)
		}
	}
	s += ": "
	if p.Field != "" {
		s += p.Field + ": "
	}
	return s
}

func (e *Error) name() string {
	if e.Name == "" {
		return "config"
	}
	return e.Name
}

// Unwrap makes an Error match bucket.ErrInvalid.
func (e *Error) Unwrap() error { return bucket.ErrInvalid }
