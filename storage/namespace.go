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
	// KindRLS is an Envoy rate limit service domain's namespace; its Name
	// is the domain. Its buckets carry tokens across limit changes (a
	// reload), as a policy's do.
	KindRLS
	// kindAll is AllNamespaces: every namespace of a key, for Reset. It
	// is never stored, so its value may change.
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

// RLSNS returns the namespace of an Envoy rate limit service domain.
func RLSNS(domain string) Namespace { return Namespace{Kind: KindRLS, Name: domain} }

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

// Validate reports whether ns can hold buckets: a policy or RLS namespace
// needs a name of 1 to 255 bytes, the cell namespace has none. The error wraps
// bucket.ErrInvalid.
func (ns Namespace) Validate() error {
	switch {
	case ns.Kind == KindPolicy && (ns.Name == "" || len(ns.Name) > 255):
		return fmt.Errorf("policy namespace %q: want a name of 1 to 255 bytes: %w", ns.Name, bucket.ErrInvalid)
	case ns.Kind == KindCell && ns.Name != "":
		return fmt.Errorf("cell namespace has no name, got %q: %w", ns.Name, bucket.ErrInvalid)
	case ns.Kind == KindRLS && (ns.Name == "" || len(ns.Name) > 255):
		return fmt.Errorf("rls namespace %q: want a domain of 1 to 255 bytes: %w", ns.Name, bucket.ErrInvalid)
	case ns.Kind > KindRLS:
		return fmt.Errorf("namespace of kind %d: %w", ns.Kind, bucket.ErrInvalid)
	}
	return nil
}

// Compare orders namespaces: policies by name, then the cell namespace,
// then RLS domains by name.
func (ns Namespace) Compare(o Namespace) int {
	return cmp.Or(cmp.Compare(ns.Kind, o.Kind), cmp.Compare(ns.Name, o.Name))
}

func (ns Namespace) String() string {
	switch ns.Kind {
	case KindPolicy:
		return "policy " + ns.Name
	case KindCell:
		return "cell"
	case KindRLS:
		return "rls " + ns.Name
	case kindAll:
		return "all"
	}
	return fmt.Sprintf("kind %d %q", ns.Kind, ns.Name)
}
