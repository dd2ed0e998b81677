#!/usr/bin/env bash
# --sync interval, SIGKILL under churn at about 950 000 live buckets: the
# age of the oldest answered take lost (bench/loss), half the rounds with
# checkpoints back to back. bucketd pinned to SERVER_CPU, the tool and
# redis-benchmark to LOAD_CPU. Usage: bench/loss.sh [ROUNDS] [SYNC_INTERVAL] [KEYS]
#   KEYS (default 1000000): the key range; the fill makes 3 x KEYS takes.
source "$(dirname "$0")/lib.sh"
rounds=${1:-6}
keys=${3:-1000000}
(cd "$root" && go build -o "$BENCH_OUT/bucketd" . && go build -o "$BENCH_OUT/loss" ./bench/loss)
taskset -c "$LOAD_CPU" "$BENCH_OUT/loss" -bin "$BENCH_OUT/bucketd" -server-cpu "$SERVER_CPU" \
  -load-cpu "$LOAD_CPU" -rounds "$rounds" -sync-interval "${2:-1s}" -keys "$keys" -fill $((3 * keys))
