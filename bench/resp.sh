#!/usr/bin/env bash
# RESP: bucketd's CL.THROTTLE against the bare redcon floor, the floor plus
# one Go map access per command (bench/redcon-map-floor) and Redis 7 running
# the Lua token bucket (bench/redis-token-bucket.lua), taking turns, servers
# on one core and redis-benchmark on the other.
# Usage: bench/resp.sh [ROUNDS] [PIPELINE] [KEYS] [REQUESTS]
#   defaults: 3 rounds of redis-benchmark -c 50 -P 16 -r 1000000 -n 2000000
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
pipe=${2:-16}
keys=${3:-1000000}
n=${4:-2000000}
build
port=${PORT:-16390}
results=$BENCH_OUT/resp.tsv
: >"$results"
bench() { # bench NAME ARGS...: redis-benchmark's requests per second
  local name=$1
  shift
  local rps
  rps=$(taskset -c "$LOAD_CPU" redis-benchmark -p "$port" -c 50 -P "$pipe" -r "$keys" -n "$n" -q "$@" |
    tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  printf '%s\t%s\t%s\n' "$round" "$name" "$rps" | tee -a "$results"
}
for round in $(seq "$rounds"); do
  data=$(mktemp -d)
  start floor "$port" "$BENCH_OUT/redcon-floor" "127.0.0.1:$port"
  bench floor CL.THROTTLE k:__rand_int__ 100 1 3600
  stop floor
  start floor+map "$port" "$BENCH_OUT/redcon-map-floor" "127.0.0.1:$port"
  bench floor+map CL.THROTTLE k:__rand_int__ 100 1 3600
  stop floor+map
  start bucketd "$port" "$BENCH_OUT/bucketd" --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$port" --data "$data/b.db"
  bench bucketd CL.THROTTLE k:__rand_int__ 100 1 3600
  stop bucketd
  start redis "$port" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$data"
  sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$root/bench/redis-token-bucket.lua")")
  bench redis-lua EVALSHA "$sha" 1 k:__rand_int__ 100 1 3600000 1
  redis-cli -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  stop redis
  rm -rf "$data"
done
echo
for name in floor floor+map bucketd redis-lua; do
  printf '%-9s median %9.0f req/s\n' "$name" "$(awk -v n=$name '$2 == n {print $3}' "$results" | median)"
done
ratio() { awk -v a="$1" -v b="$2" '$2 == a {x[$1]=$3} $2 == b {y[$1]=$3} END {for (k in x) print x[k]/y[k]}' "$results" | median; }
echo "bucketd / floor:     $(ratio bucketd floor) (median of the rounds)"
echo "floor+map / floor:   $(ratio floor+map floor)"
echo "bucketd / floor+map: $(ratio bucketd floor+map)"
echo "bucketd / Redis+Lua: $(ratio bucketd redis-lua)"
