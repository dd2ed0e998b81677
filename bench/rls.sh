#!/usr/bin/env bash
# gRPC: bucketd's ShouldRateLimit (Envoy's rate limit service) against a
# bare grpc-go server that answers OK (bench/rls-floor), taking turns, the
# server on one core and the load generator (bench/rls) on the other.
# Usage: [GHZ=path/to/ghz] bench/rls.sh [ROUNDS] [SECONDS] [CALLERS]
#   defaults: 3 rounds of 10 s, 64 callers over 4 connections, 100 000 keys
#   With GHZ set, ghz (go install github.com/bojand/ghz/cmd/ghz@latest) is
#   the load generator instead, finding the method by reflection.
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
secs=${2:-10}
callers=${3:-64}
(cd "$root" && go build -o "$BENCH_OUT/bucketd" . &&
  go build -o "$BENCH_OUT/rls-floor" ./bench/rls-floor &&
  go build -o "$BENCH_OUT/rls-load" ./bench/rls)
port=18081
results=$BENCH_OUT/rls.tsv
: >"$results"
bench() { # bench NAME: the load generator's calls per second
  local out rps
  if [[ -n ${GHZ:-} ]]; then
    out=$(taskset -c "$LOAD_CPU" "$GHZ" --insecure -c "$callers" --connections 4 -z "${secs}s" \
      --call envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit \
      -d '{"domain":"bench","descriptors":[{"entries":[{"key":"client","value":"{{.RequestNumber}}"}]}]}' \
      "127.0.0.1:$port")
    rps=$(grep -o 'Requests/sec:[[:space:]]*[0-9.]*' <<<"$out" | grep -o '[0-9.]*$')
  else
    out=$(taskset -c "$LOAD_CPU" "$BENCH_OUT/rls-load" -addr "127.0.0.1:$port" -c "$callers" -d "${secs}s")
    rps=${out%% calls/s*}
  fi
  echo "$1: $out" >&2
  printf '%s\t%s\t%s\n' "$round" "$1" "$rps" | tee -a "$results"
}
for round in $(seq "$rounds"); do
  data=$(mktemp -d)
  start floor "$port" "$BENCH_OUT/rls-floor" "127.0.0.1:$port"
  bench floor
  stop floor
  start bucketd "$port" "$BENCH_OUT/bucketd" --http-addr 127.0.0.1:0 --resp-addr "" \
    --grpc-addr "127.0.0.1:$port" --rls-config "$root/bench/rls-config" --data "$data/b.db"
  bench bucketd
  stop bucketd
  rm -rf "$data"
done
echo
for name in floor bucketd; do
  printf '%-8s median %9.0f calls/s\n' "$name" "$(awk -v n=$name '$2 == n {print $3}' "$results" | median)"
done
ratio() { awk -v a="$1" -v b="$2" '$2 == a {x[$1]=$3} $2 == b {y[$1]=$3} END {for (k in x) print x[k]/y[k]}' "$results" | median; }
echo "bucketd / floor: $(ratio bucketd floor) (median of the rounds)"
