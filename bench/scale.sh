#!/usr/bin/env bash
# At scale: about 950 000 live buckets. Memory per bucket, bytes written per
# take, latency against a small store, restart time. bucketd pinned to one
# core, redis-benchmark to the other. Usage: bench/scale.sh [SYNC]
#   SYNC: interval (default) or always
source "$(dirname "$0")/lib.sh"
sync=${1:-interval}
build
port=${PORT:-16391}
http=${HTTP_PORT:-18391}
data=$(mktemp -d)
trap 'stop bucketd KILL 2>/dev/null; rm -rf "$data"' EXIT
args=(--http-addr "127.0.0.1:$http" --resp-addr "127.0.0.1:$port" --data "$data/b.db" --sync "$sync")
rb() { taskset -c "$LOAD_CPU" redis-benchmark -p "$port" "$@"; }
pid() { cat "$BENCH_OUT/bucketd.pid"; }
field() { awk -v f="$1" '$1 == f":" {print $2}' "/proc/$(pid)/$2"; }
latency() { # latency KEYS: p50, p99 and max of unpipelined CL.THROTTLE over KEYS random keys, in ms
  rb -c 5 -P 1 -r "$1" -n 100000 CL.THROTTLE "k:__rand_int__" 100 1 3600 | tr '\r' '\n' |
    awk '/latency summary/ {getline; getline; print "p50 " $3 " ms, p99 " $5 " ms, max " $6 " ms"}'
}

start bucketd "$port" "$BENCH_OUT/bucketd" "${args[@]}"
echo "small store (1 000 keys): $(latency 1000)"
rb -c 50 -P 16 -r 1000000 -n 3000000 -q CL.THROTTLE "k:__rand_int__" 100 1 3600 >/dev/null
sleep 3
keys=$(redis-cli -p "$port" DBSIZE)
rss=$(field RssAnon status)
echo "live buckets: $keys; RssAnon: $rss kB; $((rss * 1024 / keys)) B per bucket"
echo "large store ($keys keys): $(latency 1000000)"
# The same takes while checkpoints run back to back (SAVE makes one; the
# takes dirty pages all over the table, so each writes many of them).
saves=$data/saves
( n=0; while [ ! -e "$data/stop" ]; do redis-cli -p "$port" SAVE >/dev/null; n=$((n + 1)); echo $n >"$saves"; done ) &
echo "large store, checkpoints back to back: $(latency 1000000) ($(cat "$saves" 2>/dev/null || echo 0) checkpoints during the run)"
touch "$data/stop"; wait $!

before=$(field write_bytes io)
rb -c 5 -P 1 -r 1000000 -n 80000 -q CL.THROTTLE "k:__rand_int__" 100 1 3600 >/dev/null
sleep 2.5
after=$(field write_bytes io)
echo "written: $(( (after - before) / 80000 )) B per take ($(( (after - before) / 1048576 )) MiB for 80 000 takes)"

stop bucketd TERM
t0=$(date +%s.%N)
start bucketd "$port" "$BENCH_OUT/bucketd" "${args[@]}"
t1=$(date +%s.%N)
echo "restart with $keys buckets: SIGTERM done, then $(echo "$t1 - $t0" | bc) s from start to listening; DBSIZE after: $(redis-cli -p "$port" DBSIZE)"
stop bucketd TERM
