#!/usr/bin/env bash
# HTTP: bucketd against the bare Fiber floor, taking turns, server on one
# core and wrk on the other. Usage: bench/http.sh [ROUNDS] [DURATION]
#   wrk -t2 -c32 -d10s --latency over 10 000 random keys (bench/wrk-keys.lua)
# Prints each run, then the median req/s and p99 of each server and the
# median of the per-round ratios to the floor.
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
dur=${2:-10s}
build
port=18000
results=$BENCH_OUT/http.tsv
: >"$results"
run() { # run NAME CMD...
  local name=$1
  shift
  start "$name" "$port" "$@"
  local out
  out=$(taskset -c "$LOAD_CPU" wrk -t2 -c32 -d"$dur" --latency -s "$root/bench/wrk-keys.lua" "http://127.0.0.1:$port/")
  stop "$name"
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  printf '%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$p99" | tee -a "$results"
}
for round in $(seq "$rounds"); do
  data=$(mktemp -d)
  run floor "$BENCH_OUT/fiber-floor" "127.0.0.1:$port"
  run interval "$BENCH_OUT/bucketd" --http-addr "127.0.0.1:$port" --resp-addr "" --data "$data/i.db"
  run always "$BENCH_OUT/bucketd" --http-addr "127.0.0.1:$port" --resp-addr "" --data "$data/a.db" --sync always
  rm -rf "$data"
done
echo
for name in floor interval always; do
  rps=$(awk -v n=$name '$2 == n {print $3}' "$results" | median)
  ratio=$(awk -v n=$name '$2 == "floor" {f[$1]=$3} $2 == n {r[$1]=$3} END {for (k in r) print r[k]/f[k]}' "$results" | median)
  p99s=$(awk -v n=$name '$2 == n {print $4}' "$results" | paste -sd' ')
  printf '%-9s median %9.0f req/s   ratio to floor %.2f   p99 per round: %s\n' "$name" "$rps" "$ratio" "$p99s"
done
