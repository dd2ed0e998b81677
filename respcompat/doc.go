// Package respcompat serves bucketd's buckets over the Redis protocol
// (RESP2), so that redis-cli, redis-benchmark and Redis client libraries
// can use them: rate limit with CL.THROTTLE (as the redis-cell module) or
// BUCKET.TAKE (the server's own policies), and read, set and reset buckets,
// which look like Redis hashes.
//
// Create a Server with New over a Limiter (package limiter implements it;
// main.go passes one over the embedded store), bind a listener, and call
// Serve; Shutdown stops it. It does not import package storage. The package reads requests
// with its own bounded buffer and redcon's zero-copy parser, and writes
// replies with redcon's encoders.
//
// # Buckets as hashes
//
// Every key is a bucket, of type hash. Its fields are computed when it is
// read:
//
//	tokens         tokens held now, a decimal ("14.5")
//	capacity       the most it holds ("15")
//	rate           how fast it refills ("1/3s", "10/s", "30/m")
//	updated_at_ms  when it last changed, Unix milliseconds
//	full_in_ms     milliseconds until it is full, rounded up
//	policy         the policy, or "(cl.throttle)" for CL.THROTTLE's bucket
//
// A key has a bucket per policy it was taken under, and one of its own for
// CL.THROTTLE. The hash is its bucket under the default policy when that is
// not full, exactly as a take of 0 sees it (BUCKET.TAKE key 0, GET
// /v1/buckets/key); otherwise its first bucket that is not full: other
// policies by name, then CL.THROTTLE's. For a policy of several limits,
// the fields are those of the limit with the fewest tokens left (the first
// such in the policy's order): the one that decides the next take. A full
// bucket does not exist: a key whose buckets are all full reads as a
// missing hash does in Redis, and EXISTS, DBSIZE, KEYS and SCAN leave it
// out from the instant it is full. Only tokens can be set, under the
// default policy.
//
// # Commands
//
// Errors are worded as Redis words them. Command names are in any case.
//
//	CL.THROTTLE key max_burst count period [quantity]
//	    redis-cell's command, with its reply, rounding and error texts:
//	    [limited 0|1, limit, remaining, retry_after_s, reset_after_s]; a
//	    bucket of max_burst+1 tokens earning count every period seconds.
//	    quantity 0 peeks; one more than the limit is refused with retry -1;
//	    a negative quantity gives tokens back, never above the limit. The
//	    key's CL.THROTTLE bucket is apart from its policy buckets; called
//	    with other limits, it keeps its time until full, as redis-cell does.
//	    Takes are counted (INFO policies, cl_throttle).
//	BUCKET.TAKE key [cost] [POLICY name]
//	    Takes cost tokens (a decimal, default 1; 0 peeks) under one of the
//	    server's policies (the default one when name is absent or empty;
//	    the key's own limits if it has an override), as GET /{key} does
//	    over HTTP. Policy names are case-sensitive; one the server does not
//	    have is answered "-ERR unknown policy 'gold'". The reply is an
//	    array of six:
//	      allowed         1 if the request may proceed, else 0; always 1
//	                      under a shadow policy
//	      limit           capacity in whole tokens of the limit with the
//	                      fewest tokens left
//	      remaining       its tokens after the take (before it if refused),
//	                      whole, rounded down
//	      retry_after_ms  0 if the take succeeded, else milliseconds until
//	                      it would (rounded up), or -1 if cost is more
//	                      than the capacity; under a shadow policy a
//	                      refusal shows here while allowed is 1
//	      reset_after_ms  milliseconds until every limit is full, rounded up
//	      policy          the name of the policy that decided
//	HGETALL, HGET, HMGET, HEXISTS, HLEN, HKEYS, HVALS, HSTRLEN, HSCAN
//	    Read a bucket's fields, as above.
//	HSET key tokens N [tokens N ...], HMSET key tokens N
//	    Set the tokens held now (clamped to [0, capacity]; a negative N is
//	    0). HSET replies 0, HMSET OK. Other fields are read-only.
//	EXISTS key [key ...]   TYPE key (hash or none)   DBSIZE   RANDOMKEY
//	TTL key, PTTL key
//	    Seconds or milliseconds, rounded up, until the bucket is full again
//	    (every limit of it), when the store may forget it; -2 if absent.
//	DEL key [key ...], UNLINK key [key ...]
//	    Reset buckets to full; the reply counts those that existed.
//	KEYS pattern, SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
//	    Redis's glob patterns: '*', '?', classes ('[abc]', '[^a]',
//	    '[a-z]') and '\' escapes, by byte. SCAN's cursor is the store's;
//	    every key is a hash, so TYPE anything else matches none.
//	FLUSHDB [ASYNC|SYNC], FLUSHALL [ASYNC|SYNC]
//	    Reset every bucket.
//	PING [msg], ECHO msg, QUIT, SELECT 0 (no other database), TIME
//	AUTH [default|admin] password
//	HELLO [2 [AUTH default|admin password] [SETNAME name]]
//	    RESP2 only: HELLO 3 is answered "-NOPROTO unsupported protocol
//	    version", which go-redis v9 takes as the signal to fall back to
//	    RESP2 (and AUTH).
//	CLIENT ID|GETNAME|SETNAME|SETINFO|INFO|LIST|HELP
//	COMMAND [COUNT|INFO|DOCS|LIST|HELP]
//	    DOCS gives what redis-cli 7 reads at startup for its hints.
//	MULTI, EXEC, DISCARD, WATCH key [key ...], UNWATCH
//	    Transactions, with Redis's replies (multi.go): EXEC runs the
//	    queued commands in one Limiter.Atomic, so no other client sees
//	    the state between them; a watched key that changed makes EXEC
//	    answer a nil array.
//	MONITOR
//	    Streams every command run, in Redis's format, AUTH's secrets
//	    redacted (monitor.go).
//	INFO [section ...]
//	    server, clients, memory, stats, persistence, keyspace, policies,
//	    top, and bucketd (the fields of Config.Info), in Redis's format;
//	    all, everything and commandstats add commandstats (cmdstat_<name>:
//	    calls=N, from Stats). The
//	    policies section has the number of policies, the default's name and
//	    a line per policy with its decisions since the server started
//	    (takes, not peeks; denied includes the refusals a shadow policy let
//	    through):
//	      policies:3
//	      default_policy:free
//	      policy_free:allowed=120,denied=3,shadow=0
//	      cl_throttle:allowed=40,denied=2
//	    persistence's rdb_last_bgsave_status is "err" while the data file
//	    cannot be written (or the store is closed), whoever wrote last.
//	    top lists the keys refused most over the last 5 minutes (see
//	    topFields): top_limited_0:key=user42,policy=free,count=1520,error=0.
//	CONFIG GET pattern [pattern ...]
//	    Patterns are globs, as KEYS's, matched in any case. Parameters:
//	      capacity, rate   the default policy's limit; a policy of several
//	                       limits lists each, space-separated ("10 20")
//	      default-policy   the default policy's name ("free")
//	      policies         every policy's name, space-separated, sorted
//	                       ("free new-search paid")
//	      policy.<name>    one per policy (the name keeps its case): its
//	                       limits in order, comma-separated, each as
//	                       CAPACITY@RATE in the syntax of --capacity and
//	                       --rate, then " shadow" for a shadow policy:
//	                       "5@1/3s", "100@10/s,100000@100000/d",
//	                       "10@1/s shadow"
//	      maxmemory, maxmemory-policy, save, appendonly, databases,
//	      maxclients, timeout, port
//	                       what Redis clients and tools ask for
//	CONFIG SET name value [name value ...]
//	    capacity and rate replace the default policy's single limit;
//	    maxmemory and maxmemory-policy are checked and otherwise ignored.
//	    default-policy, policies and policy.<name> are refused ("can't set
//	    immutable config"): policies come from the --config file; edit it
//	    and reload (SIGHUP or POST /v1/reload). When the file defines the
//	    default policy, a reload also replaces what CONFIG SET capacity or
//	    rate changed. Nothing is set unless every pair is valid.
//	CONFIG RESETSTAT, CONFIG HELP
//	SAVE, BGSAVE [SCHEDULE], LASTSAVE
//	    Write every bucket to disk now, or on a goroutine; when last done.
//	SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]
//	    Calls Config.Shutdown and closes the connection without a reply.
//	    bucketd always writes every bucket to disk as it stops, so NOSAVE
//	    changes nothing.
//
// With Config.RequirePass set, every command but AUTH, HELLO and QUIT is
// answered "-NOAUTH Authentication required." until AUTH or HELLO AUTH
// succeeds. With Config.AdminToken set, the admin commands (FLUSHALL,
// FLUSHDB, DEL, UNLINK, HSET, HMSET, CONFIG SET/RESETSTAT/REWRITE, SAVE,
// BGSAVE, SHUTDOWN, MONITOR) need AUTH admin <token> and answer others
// "-NOPERM this user has no permissions to run the 'flushall' command".
//
// # Limits
//
// A command may take at most MaxCommandSize bytes (64 KiB, framing
// included) and MaxArgs arguments (1024). A request over a limit, or
// malformed, is answered "-ERR Protocol error: ..." ("invalid bulk
// length", "invalid multibulk length", "too big inline request", "expected
// '$', got 'x'", "unbalanced quotes in request"), as soon as its header or
// first bytes show it, and the connection is closed. A connection's read
// buffer never holds more than one unfinished command and one read, so
// what a client claims or streams does not grow the server's memory.
// Commands pipelined in one write are run in order and answered in one
// write, or in writes of 64 KiB while more are run: a client that does not
// read its replies is not read either (Config.OutputLimit). Config.MaxClients bounds the connections (one more is answered
// "-ERR max number of clients reached" and closed) and Config.IdleTimeout
// closes idle ones.
//
// A change that was made but could not be written to the data file (under
// --sync always) is answered "-MISCONF ...", as Redis refuses the writes it
// cannot persist; the change stays made.
//
// Redis features with no meaning here are not implemented and answer
// "unknown command": strings, lists and the other types,
// pub/sub, scripting, replication, cluster and RESP3.
package respcompat
