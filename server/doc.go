// Package server is the HTTP front of bucketd, on Fiber v2. It is a thin
// adapter: a handler parses the request, calls the Limiter, and renders the
// result. It holds no bucket state, reads no clock for any decision, and is
// the only package that imports Fiber.
//
// # Routes
//
// Only GET is served; any other method, HEAD included, gets 405 with
// "Allow: GET", before any request body is read.
//
//	GET /{key}            take 1 token from key's bucket under the default policy
//	GET /{key}?cost=N     take N tokens: a positive decimal with at most six
//	                      decimal places, e.g. 1, 0.25, 12.5
//	GET /{key}?policy=P   take under the policy named P instead of the default
//	GET /healthz          200 {"status":"ok"} while the server is serving
//
// The key is one path segment, percent-decoded ("/a%2Fb" is the key "a/b";
// '+' is kept as is). It is at most Config.MaxKeyLen bytes once decoded.
// Since /healthz is routed first, the key "healthz" can only be reached
// percent-encoded, as /health%7A. A trailing slash is ignored: /joe/ is /joe.
// Routing is case-sensitive: /Joe and /joe are different keys.
//
// A take answers, with Content-Type application/json and exactly these
// bodies (those of the Python service bucketd replaces):
//
//	200 {"detail":"OK"}                 allowed, or any take under a shadow policy
//	429 {"detail":"Too Many Requests"}  denied; carries Retry-After
//
// Every other answer has a body {"error":"...","field":"..."}, where field
// names the query parameter or path part at fault and is left out when none
// is:
//
//	400 a bad cost: not a decimal number, zero, negative, NaN or infinite,
//	    more than six decimal places, or more than the policy's capacity
//	    (a cost that could never be allowed); a malformed percent-escape in the key
//	404 an unknown policy (field "policy"); GET / (no key, field "key");
//	    any other path
//	405 a method other than GET
//	414 a key longer than Config.MaxKeyLen bytes
//	431 request headers larger than the read buffer (8 KiB)
//	500 an internal error; the message is generic and the error is logged
//	503 the store is shutting down
//
// # Rate-limit fields
//
// Every answer to a take (200, 429, and the 400 of a cost above capacity)
// carries the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers-10, and a 429 also carries
// Retry-After. A token bucket maps onto the draft's fields as follows; every
// value is a whole number, rounded so that a client that trusts it is never
// early:
//
//	RateLimit-Policy: "default";q=10;w=30
//	RateLimit: "default";r=7;t=9
//	Retry-After: 2
//
//	q  the capacity (the burst), in whole tokens rounded down
//	w  the time an empty bucket takes to fill, in seconds rounded up (at least 1)
//	r  the tokens left after this take (before it, if denied), rounded down
//	t  the seconds until the bucket is full again, rounded up
//	Retry-After  on a 429, the seconds until this same cost would be
//	   allowed, rounded up: 1.2 s gives 2, exactly 3 s gives 3
//
// A policy with one limit is one item named after the policy. A policy with
// several limits (a burst and a daily quota, say) is one item per limit,
// in the policy's order, named "<policy>-1", "<policy>-2", ...; the same
// names are used in both fields so a client can pair them.
package server
