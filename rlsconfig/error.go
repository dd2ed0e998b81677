package rlsconfig

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bucketd/bucketd/bucket"
)

// Error is a configuration that is not valid. It lists every problem found,
// in the order of the files; after 50, the last says that there were more.
// It wraps bucket.ErrInvalid.
type Error struct {
	Problems []Problem
}

// Problem is one thing wrong in one file.
type Problem struct {
	File string // the file's path; "" for the directory as a whole
	// Line and Column are 1-based; 0 when unknown.
	Line, Column int
	// Field is the path of the field at fault, such as
	// "descriptors[0].rate_limit.unit"; "" for the file as a whole.
	Field string
	Msg   string
}

// String returns "FILE:LINE:COLUMN: FIELD: MESSAGE", leaving out what is
// unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.File == "" {
		b.WriteString("rls config")
	}
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Column > 0 {
			b.WriteString(":" + strconv.Itoa(p.Column))
		}
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error returns one problem per line, after a count when there are several.
func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rls config: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n" + p.String())
	}
	return b.String()
}

// Unwrap makes an Error match bucket.ErrInvalid.
func (e *Error) Unwrap() error { return bucket.ErrInvalid }
