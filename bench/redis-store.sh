#!/usr/bin/env bash
# The Redis store, side by side in one run: CL.THROTTLE through one bucketd
# on its embedded store, through one bucketd on the Redis store (--store), and
# EVALSHA of the plain Redis+Lua token bucket (bench/redis-token-bucket.lua)
# straight to Redis. Servers share one core (SERVER_CPU: bucketd and the
# Redis it uses run on it together), redis-benchmark runs on the other.
# Throughput and p99 from redis-benchmark --csv, medians of the rounds.
# Usage: bench/redis-store.sh [ROUNDS] [CLIENTS] [PIPELINE] [KEYS] [REQUESTS]
#   defaults: 3 rounds of redis-benchmark -c 50 -P 1 -r 100000 -n 200000
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
clients=${2:-50}
pipe=${3:-1}
keys=${4:-100000}
n=${5:-200000}
build
port=16390  # what redis-benchmark talks to
rport=16391 # the Redis of the Redis store
results=$BENCH_OUT/redis-store.tsv
: >"$results"
bench() { # bench NAME ARGS...: requests per second and p99 (ms)
  local name=$1
  shift
  local line
  line=$(taskset -c "$LOAD_CPU" redis-benchmark -p "$port" -c "$clients" -P "$pipe" -r "$keys" -n "$n" --csv "$@" | tail -1)
  # "NAME","rps","avg","min","p50","p95","p99","max"
  printf '%s\t%s\t%s\t%s\n' "$round" "$name" \
    "$(echo "$line" | cut -d, -f2 | tr -d '"')" "$(echo "$line" | cut -d, -f7 | tr -d '"')" | tee -a "$results"
}
redis_up() { # redis_up PORT DIR
  start "redis-$1" "$1" redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --dir "$2"
}
redis_down() {
  redis-cli -p "$1" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  stop "redis-$1"
}
for round in $(seq "$rounds"); do
  data=$(mktemp -d)
  start bucketd "$port" "$BENCH_OUT/bucketd" --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$port" --data "$data/b.db"
  bench embedded CL.THROTTLE k:__rand_int__ 100 1 3600
  stop bucketd

  redis_up "$rport" "$data"
  start bucketd "$port" "$BENCH_OUT/bucketd" --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$port" \
    --store "redis://127.0.0.1:$rport" --store-timeout 1s
  bench redis-store CL.THROTTLE k:__rand_int__ 100 1 3600
  calls=$(redis-cli -p "$rport" INFO commandstats | tr -d '\r' | awk -F'[=:,]' '$1 == "cmdstat_evalsha" {print $3}')
  stop bucketd
  redis_down "$rport"
  echo "round $round: Redis ran $calls EVALSHA for $n takes through bucketd" | tee -a "$BENCH_OUT/redis-store.calls"

  redis_up "$port" "$data"
  sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$root/bench/redis-token-bucket.lua")")
  bench redis-lua EVALSHA "$sha" 1 k:__rand_int__ 100 1 3600000 1
  redis_down "$port"
  rm -rf "$data"
done
echo
printf '%-12s %12s %9s\n' "" "req/s" "p99 ms"
for name in embedded redis-store redis-lua; do
  printf '%-12s %12.0f %9s\n' "$name" \
    "$(awk -v n=$name '$2 == n {print $3}' "$results" | median)" \
    "$(awk -v n=$name '$2 == n {print $4}' "$results" | median)"
done
