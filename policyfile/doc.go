// Package policyfile reads the policies file: named token-bucket policies
// in YAML, checked in full, with every problem reported at its line, column
// and field.
//
// A file is one YAML document: a mapping with an optional default and a
// mapping of named policies, each with one limit (capacity and rate) or a
// list of limits, and optionally shadow:
//
//	default: free            # the policy of a take that names none (optional)
//	policies:
//	  free:                  # one limit: capacity and rate
//	    capacity: 5
//	    rate: 1/3s
//	  paid:                  # several limits, all enforced together
//	    limits:
//	      - {capacity: 100, rate: 10/s}
//	      - {capacity: 100000, rate: 100000/d}
//	  new-search:
//	    capacity: 10
//	    rate: 1/s
//	    shadow: true         # measured, never refused
//	    on_store_error: open # allowed when the Redis store is down (optional)
//
// The rules:
//
//   - A policy name is 1 to 64 letters, digits, '_', '.' or '-'.
//   - capacity is a decimal number of tokens with up to 6 places
//     (bucket.ParseTokens: 0.1 is exactly a tenth), and rate is
//     TOKENS/PERIOD (bucket.ParseRate: 10/s, 1/3s, 0.5/1m30s).
//   - A policy has either capacity and rate (one limit) or limits (a list
//     of 1 to bucket.MaxLimits {capacity, rate}), not both, and optionally
//     shadow: true or false, default false, and on_store_error: closed or
//     open, what a take does when the store (Redis) cannot answer;
//     left out, the server's --on-store-error.
//   - default names the policy a take that names none uses, and must be one
//     of the file's policies or bucket.DefaultPolicy. Left out, it means
//     bucket.DefaultPolicy.
//   - Unknown fields, a name or field given twice, and bad values are
//     errors, never ignored. Anchors and aliases (&std, *std) may be used.
//
// The file is walked as a YAML node tree, not decoded into structs, so that
// every problem carries its line and column, all of them are reported at
// once (up to 50), and numbers keep their literal text. An invalid file is
// an *Error, which lists the problems as "FILE:LINE:COLUMN: FIELD: MESSAGE":
//
//	policies.yaml: 2 problems:
//	policies.yaml:4:11: policies.free.rate: rate "1/x": period "x" is not a duration such as s, m, h, d or 3s
//	policies.yaml:7:20: policies.paid.limits[0].capacity: capacity 0 must be positive
package policyfile
