package storage

import (
	"cmp"
	"fmt"

	"github.com/bucketd/bucketd/bucket"
)

// Kind is the kind of a namespace: who owns its buckets and how a bucket
// keeps its state when it is taken under other limits.
type Kind uint8

const (
	// KindPolicy is a policy's namespace; its Name is the policy's name.
	// Its buckets carry tokens across limit changes (a reload, an
	// override). It is the zero value.
	KindPolicy Kind = iota
	// KindCell is CL.THROTTLE's namespace (redis-cell's); its Name is
	// empty. Each call gives the limits, and a bucket carries its time
	// until full across calls with other limits, as redis-cell does.
	KindCell
	// kindAll is AllNamespaces: every namespace of a key, for Reset.
	kindAll
)

// Namespace is a family of buckets, one per key: a bucket is identified by
// (Namespace, key). Kinds keep names apart: the policy named "x" and a
// namespace of another kind named "x" never share a bucket.
type Namespace struct {
	Kind Kind
	Name string
}

// PolicyNS returns the namespace of the named policy.
func PolicyNS(name string) Namespace { return Namespace{Kind: KindPolicy, Name: name} }

var (
	// CellNS is CL.THROTTLE's namespace.
	CellNS = Namespace{Kind: KindCell}
	// AllNamespaces, given to Reset, names every namespace of a key.
	AllNamespaces = Namespace{Kind: kindAll}
)

// Carry is what a bucket of ns keeps when taken under other limits.
func (ns Namespace) Carry() bucket.Carry {
	if ns.Kind == KindCell {
		return bucket.CarryTime
	}
	return bucket.CarryTokens
}

// Validate reports whether ns can hold buckets: a policy namespace needs a
// name of at most 255 bytes, the cell namespace has none. The error wraps
// bucket.ErrInvalid.
func (ns Namespace) Validate() error {
	switch {
	case ns.Kind == KindPolicy && (ns.Name == "" || len(ns.Name) > 255):
		return fmt.Errorf("policy namespace %q: want a name of 1 to 255 bytes: %w", ns.Name, bucket.ErrInvalid)
	case ns.Kind == KindCell && ns.Name != "":
		return fmt.Errorf("cell namespace has no name, got %q: %w", ns.Name, bucket.ErrInvalid)
	case ns.Kind > KindCell:
		return fmt.Errorf("namespace of kind %d: %w", ns.Kind, bucket.ErrInvalid)
	}
	return nil
}

// Compare orders namespaces: policies by name, then the cell namespace.
func (ns Namespace) Compare(o Namespace) int {
	return cmp.Or(cmp.Compare(ns.Kind, o.Kind), cmp.Compare(ns.Name, o.Name))
}

func (ns Namespace) String() string {
	switch ns.Kind {
	case KindPolicy:
		return "policy " + ns.Name
	case KindCell:
		return "cell"
	case kindAll:
		return "all"
	}
	return fmt.Sprintf("kind %d %q", ns.Kind, ns.Name)
}
