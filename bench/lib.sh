# Shared by the bench scripts: build the binaries, start and stop servers
# pinned to one core, medians. Servers listen on 127.0.0.1 only.
set -euo pipefail
BENCH_OUT=${BENCH_OUT:-/tmp/bucketd-bench}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$BENCH_OUT"

build() {
  (cd "$root" && go build -o "$BENCH_OUT/bucketd" . &&
    go build -o "$BENCH_OUT/fiber-floor" ./bench/fiber-floor &&
    go build -o "$BENCH_OUT/redcon-floor" ./bench/redcon-floor &&
    go build -o "$BENCH_OUT/redcon-map-floor" ./bench/redcon-map-floor)
}

# start NAME PORT CMD...: runs CMD pinned to SERVER_CPU, waits until PORT answers.
start() {
  local name=$1 port=$2
  shift 2
  taskset -c "$SERVER_CPU" "$@" >"$BENCH_OUT/$name.log" 2>&1 &
  echo $! >"$BENCH_OUT/$name.pid"
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$name did not start; its log:" >&2
  cat "$BENCH_OUT/$name.log" >&2
  return 1
}

# stop NAME [SIGNAL]: stops the server and waits for it.
stop() {
  local pid
  pid=$(cat "$BENCH_OUT/$1.pid")
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# median: the median of the numbers on standard input, one a line.
median() {
  sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.4g\n", (a[NR/2]+a[NR/2+1])/2}'
}
