package policyfile

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	yaml "go.yaml.in/yaml/v4"
)

// TestSyntaxProblem pins how a YAML error becomes a problem: the position
// comes from the error's fields, never from its text.
func TestSyntaxProblem(t *testing.T) {
	t.Parallel()
	at := func(line, col int) yaml.Mark { return yaml.Mark{Line: line, Column: col} }
	tests := []struct {
		name string
		err  error
		want Problem
	}{
		{"mark only", &yaml.LoadError{Message: "bad", Mark: at(3, 7)},
			Problem{Line: 3, Column: 7, Msg: "YAML syntax: bad"}},
		{"context elsewhere", &yaml.LoadError{Message: "bad", Mark: at(5, 2), ContextMsg: "while parsing a flow mapping", ContextMark: at(4, 6)},
			Problem{Line: 5, Column: 2, Msg: "YAML syntax: bad (while parsing a flow mapping at line 4, column 6)"}},
		{"context on the same line", &yaml.LoadError{Message: "bad", Mark: at(5, 2), ContextMsg: "while parsing", ContextMark: at(5, 1)},
			Problem{Line: 5, Column: 2, Msg: "YAML syntax: bad (while parsing at line 5, column 1)"}},
		{"context at the mark", &yaml.LoadError{Message: "bad", Mark: at(5, 2), ContextMsg: "while parsing", ContextMark: at(5, 2)},
			Problem{Line: 5, Column: 2, Msg: "YAML syntax: bad"}},
		{"context at an unknown place", &yaml.LoadError{Message: "bad", Mark: at(5, 2), ContextMsg: "while parsing"},
			Problem{Line: 5, Column: 2, Msg: "YAML syntax: bad"}},
		{"unknown position", &yaml.LoadError{Message: "bad", Mark: at(0, 4)},
			Problem{Msg: "YAML syntax: bad"}},
		{"wrapped", fmt.Errorf("reading: %w", &yaml.LoadError{Message: "bad", Mark: at(2, 1)}),
			Problem{Line: 2, Column: 1, Msg: "YAML syntax: bad"}},
		{"not a LoadError: no position, the text as it is", errors.New("yaml: line 9: bad"),
			Problem{Msg: "YAML syntax: yaml: line 9: bad"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, syntaxProblem(tt.err))
		})
	}
}
