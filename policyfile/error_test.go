package policyfile_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/bucketd/bucketd/policyfile"
)

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	one := &policyfile.Error{Name: "p.yaml", Problems: []policyfile.Problem{
		{Line: 7, Column: 13, Field: "policies.paid.limits[1].rate", Msg: `rate "100000/x": period "x" is not a duration`},
	}}
	assert.Equal(t, `p.yaml:7:13: policies.paid.limits[1].rate: rate "100000/x": period "x" is not a duration`, one.Error())

	many := &policyfile.Error{Name: "p.yaml", Problems: []policyfile.Problem{
		{Msg: "the file is empty"},
		{Line: 3, Msg: "YAML syntax: bad"},
		{Line: 4, Column: 2, Field: "policies.a", Msg: "no limits"},
	}}
	assert.Equal(t, "p.yaml: 3 problems:\n"+
		"p.yaml: the file is empty\n"+
		"p.yaml:3: YAML syntax: bad\n"+
		"p.yaml:4:2: policies.a: no limits", many.Error())

	unnamed := &policyfile.Error{Problems: []policyfile.Problem{{Line: 1, Column: 1, Msg: "bad"}}}
	assert.Equal(t, "config:1:1: bad", unnamed.Error())
}
