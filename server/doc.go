// Package server is the HTTP front of bucketd, on Fiber v2. It is a thin
// adapter: a handler parses the request, calls the Limiter (package limiter
// implements it; main.go passes it to New), and renders the result. It holds
// no bucket state, reads no clock for any decision, never imports the
// store, and is the only package that imports Fiber.
//
// # Routes
//
//	GET /{key}            take 1 token from key's bucket under the default policy
//	GET /{key}?cost=N     take N tokens: a positive decimal with at most six
//	                      decimal places, e.g. 1, 0.25, 12.5
//	GET /{key}?policy=P   take under the policy named P instead of the default
//	GET /healthz          200 {"status":"ok"} while the server is serving (liveness)
//	GET /readyz           200 {"status":"ok"} while the store is open and its changes
//	                      reach the disk; 503 {"status":"unavailable","error":"..."}
//	                      while writes fail or once it is closed (readiness)
//	GET /ui               the dashboard (ui.go), and its files at /ui/{asset}
//	GET /metrics          the Config.Metrics handler (Prometheus), when set;
//	                      no admin token. Without Config.Metrics, /metrics is
//	                      a take of the key "metrics"
//
// and the JSON API under /v1, described by the OpenAPI 3.1 document served
// at GET /v1/openapi.json (openapi.json here; a test keeps it in step with
// the routes). "admin" marks the routes that need Config.AdminToken when it
// is set:
//
//	POST   /v1/take                  {"key","policy","cost"}: one take, answered with the decision
//	POST   /v1/batch                 {"takes":[...]}: up to 1000 takes -> {"results":[...]}
//	GET    /v1/buckets/{key}         ?policy=: peek (a take of 0)
//	DELETE /v1/buckets/{key}         ?policy=: reset (admin); no policy resets every bucket of key
//	PUT    /v1/buckets/{key}/tokens  ?policy=, {"tokens":N}: set the tokens held now (admin)
//	GET    /v1/buckets               ?prefix=&cursor=&limit=: a page of keys (admin)
//	GET    /v1/policies              every policy, with counts
//	GET    /v1/overrides             every override (admin)
//	GET    /v1/overrides/{key}       ?policy=: key's own limits under a policy
//	PUT    /v1/overrides/{key}       ?policy=, {"limits":[{"capacity","rate"}]} (admin)
//	DELETE /v1/overrides/{key}       ?policy= (admin)
//	POST   /v1/reload                Config.Reload, then the policies (admin)
//	GET    /v1/top                   ?window=5m&limit=20: the keys refused most (admin)
//	GET    /v1/status                live buckets, memory, persistence, uptime, version (admin)
//	GET    /v1/openapi.json          the OpenAPI document
//
// Any other method of a known path gets 405 with an Allow field; HEAD gets
// 405 too, since a GET of /{key} takes a token. A key in a path is one path
// segment, percent-decoded ("/a%2Fb" is the key "a/b"; '+' is kept as is),
// at most Config.MaxKeyLen bytes once decoded. The fixed paths are routed
// first, so the keys "healthz", "readyz", "v1" and "ui" (and "metrics"
// with Config.Metrics) can only be reached percent-encoded, as /health%7A,
// /ready%7A, /v%31 and /u%69 (/metric%73); GET /v1 itself is a
// 404. A trailing slash is
// ignored: /joe/ is /joe. Routing is case-sensitive: /Joe and /joe are
// different keys.
//
// # GET /{key}
//
// A take answers, with Content-Type application/json and exactly these
// bodies (those of the Python service bucketd replaces):
//
//	200 {"detail":"OK"}                 allowed, or any take under a shadow policy
//	429 {"detail":"Too Many Requests"}  denied; carries Retry-After
//
// # The JSON API
//
// A decision (of POST /v1/take, a batch slot, a peek or a set) is
//
//	{"key":"joe","policy":"default","shadow":false,"allowed":true,"limited":false,"never":false,
//	 "cost":2.5,"limit":5,"remaining":2.5,"retry_after_ms":0,"reset_after_ms":7500,
//	 "limits":[{"capacity":5,"rate":"1/3s","allowed":true,"remaining":2.5,"retry_after_ms":0,"reset_after_ms":7500}]}
//
// and is answered 200 whether the take is allowed or not: it is a decision
// service, and only GET /{key} answers 429. "allowed" is what the caller
// should do (always true under a shadow policy, as GET /{key} answers 200);
// "limited" is whether the limits refused the take. A cost above a capacity
// is a decision too, with "never" true and "retry_after_ms" null (GET /{key}
// answers it 400). Amounts of tokens are JSON numbers written exactly, with
// at most six decimals; durations are integer milliseconds rounded up. In a
// request an amount is a JSON number or a string holding one, parsed from
// its text by bucket.ParseTokens, so 0.1 is exact; an exponent (1e3) is
// refused.
//
// Request bodies are JSON objects read strictly: field names match exactly
// (case-sensitive), and an unknown or duplicate field, a value of the wrong
// type, invalid UTF-8 or data after the object is a 400 naming the field. The
// Content-Type of a request is not checked, and a body is never
// decompressed. A body over Config.MaxBodyBytes (1 MiB by default) gets 413.
// A batch takes each item in order as POST /v1/take would, and answers each
// in its slot: a decision, or {"error","field","status"} for that take's own
// error (an unknown policy, a bad cost, even a store shutting down); only a
// body that is not a valid batch, or one of more than 1000 takes, fails the
// whole request, before any take is made.
//
// # Admin token
//
// With Config.AdminToken set, the admin routes need "Authorization: Bearer
// <token>"; without it or with another token they get 401 with a
// WWW-Authenticate challenge. The token is compared in constant time, as
// SHA-256 digests. Takes, batches, peeks, the policies and a key's
// override stay open: they need the key already. Listing keys or overrides
// is admin, because keys are often secrets (API keys) or personal (user
// ids, IPs). With no token every route is open.
//
// # Errors
//
// Every other answer has a body {"error":"...","field":"..."}, where field
// names the query parameter, path part or body field at fault (a path such
// as "takes[3].cost" or "limits[0].rate" in a body) and is left out when
// none is:
//
//	400 a bad cost: not a decimal number, zero, negative, NaN or infinite,
//	    more than six decimal places, or (GET /{key} only) more than the
//	    policy's capacity; a malformed percent-escape in the key; malformed
//	    JSON, an unknown or duplicate field, a bad value in a body; a batch
//	    of more than 1000 takes; ambiguous framing (two Content-Length
//	    fields, Content-Length with Transfer-Encoding, a Transfer-Encoding
//	    other than chunked, folded header lines), answered with the
//	    connection closed (framing.go)
//	401 an admin route without the admin token
//	404 an unknown policy (field "policy"); GET / (no key, field "key");
//	    no such override; any other path
//	405 a method the path does not serve
//	413 a request body over Config.MaxBodyBytes
//	414 a key longer than Config.MaxKeyLen bytes in the path (400 in a body)
//	422 POST /v1/reload: the reload failed; the message says why
//	431 request headers larger than the read buffer (8 KiB)
//	500 an internal error; the message is generic and the error is logged
//	501 POST /v1/reload without Config.Reload
//	503 the store is shutting down; or, under --sync always, the change was
//	    made but could not be written to disk: its tokens stay spent, and a
//	    later write carries it (bucket.ErrNotDurable)
//
// # Rate-limit fields
//
// Every answer to GET /{key} (200, 429, and the 400 of a cost above
// capacity) carries the RateLimit-Policy and RateLimit fields of
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
//
// # Shutdown and TLS
//
// Shutdown closes at once the connections with no request in flight (idle
// ones, and connected ones that have sent no byte: conns.go), lets the
// others finish, and closes each after its answer. With Config.TLS, Serve
// answers HTTPS only.
package server
