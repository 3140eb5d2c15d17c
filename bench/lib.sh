# Shared helpers for the bench/ scripts. Everything runs on loopback, every
# load is bounded in time, and only processes started here are stopped, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NUBO=${NUBO:-$ROOT/build/nubo}
[[ -x $NUBO ]] || { echo "bench: $NUBO not found; run 'make build' first" >&2; exit 1; }

# The load of the wrk-based benches (run_wrk, measure_pair).
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
require_wrk() { command -v wrk >/dev/null || { echo "bench: wrk missing (scripts/setup installs it)" >&2; exit 1; }; }

BENCH_TMP=$(mktemp -d /tmp/nubo-bench.XXXXXX)
chmod 755 "$BENCH_TMP"  # nginx workers run as an unprivileged user
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$BENCH_TMP"
}
trap cleanup EXIT

# Starts `nubo serve` in a temp data dir; sets NUBO_DATA_URL, NUBO_SERVER, NUBO_TOKEN.
start_nubo() {
  local data=$BENCH_TMP/data
  XDG_CONFIG_HOME=$BENCH_TMP/config "$NUBO" serve --data "$data" --listen 127.0.0.1:0 \
    --control 127.0.0.1:0 "$@" >"$BENCH_TMP/nubo.log" 2>&1 &
  NUBO_PID=$!
  PIDS+=("$NUBO_PID")
  for _ in $(seq 1 500); do
    [[ -s $data/serve.json ]] && grep -q "\"pid\":$NUBO_PID" "$data/serve.json" && break
    sleep 0.01
  done
  NUBO_DATA_URL=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["data_url"])' "$data/serve.json")
  export NUBO_SERVER=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["control_url"])' "$data/serve.json")
  export NUBO_TOKEN=$(cat "$data/admin.token")
}

free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

json_field() {  # json_field FIELD < json
  python3 -c 'import json,sys;print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# cpu_ticks PID -> user+system clock ticks the process has used (0 if none).
cpu_ticks() {
  [[ -n ${1:-} && -r /proc/$1/stat ]] || { echo 0; return; }
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# run_wrk URL [PID] -> "req/s p50_ms p99_ms non2xx cpu_us" (wrk -t$THREADS -c$CONNS -d$DURATION);
# cpu_us: the CPU time process PID spent per request, in microseconds (0 without PID).
run_wrk() {
  local before after
  before=$(cpu_ticks "${2:-}")
  wrk -t"${THREADS:-2}" -c"${CONNS:-50}" -d"${DURATION:-10s}" --latency "$1" >"$BENCH_TMP/wrk.out"
  after=$(cpu_ticks "${2:-}")
  python3 - "$BENCH_TMP/wrk.out" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
total = float(re.search(r"(\d+) requests in", t).group(1))
def lat(p):
    m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)" % p, t)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
ticks = float(sys.argv[3]) - float(sys.argv[2])
cpu_us = ticks / float(sys.argv[4]) * 1e6 / total if total else 0
print(f"{rps:.0f} {lat(50):.3f} {lat(99):.3f} {errs.group(1) if errs else 0} {cpu_us:.2f}")
PY
}

# wait_for URL: until it answers (bounded: 3 s).
wait_for() {
  for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.01; done
  echo "bench: $1 did not answer" >&2
  return 1
}

# measure_pair NUBO_URL REFERENCE_URL -> "n_rps n_p50 n_p99 n_err n_cpu r_rps r_p50 r_p99 r_err r_cpu"
# Both must serve the same body; each is warmed, then measured with run_wrk
# $ROUNDS times (default 3), taking turns, so that a slow spell of the
# machine falls on both. n_cpu: the nubo server process's CPU per request
# (the gateway's; instances are processes of their own). Each figure is the
# median of its rounds; the rounds go to stderr.
ROUNDS=${ROUNDS:-3}
measure_pair() {
  [[ $(curl -sf "$1") == $(curl -sf "$2") ]] || { echo "bench: bodies differ" >&2; return 1; }
  wrk -t1 -c8 -d2s "$1" >/dev/null
  wrk -t1 -c8 -d2s "$2" >/dev/null
  local rounds=() r n g
  for r in $(seq 1 "$ROUNDS"); do
    n=$(run_wrk "$1" "${NUBO_PID:-}")
    g=$(run_wrk "$2")
    echo "  round $r: nubo ${n%% *} req/s, reference ${g%% *} req/s" >&2
    rounds+=("$n $g")
  done
  python3 - "${rounds[@]}" <<'PY'
import statistics, sys
rows = [r.split() for r in sys.argv[1:]]
cols = list(zip(*rows))
def med(i):
    v = statistics.median(float(x) for x in cols[i])
    return f"{v:.0f}" if i in (0, 3, 5, 8) else f"{v:.3f}"
print(" ".join(med(i) for i in range(10)))
PY
}

# report_pair TITLE REFERENCE TARGET PAIR [NUBO_NOTE]: prints measure_pair's
# figures under TITLE, and the ratio nubo/REFERENCE against TARGET ("0.7x").
report_pair() {
  local n_rps n_p50 n_p99 n_err n_cpu r_rps r_p50 r_p99 r_err r_cpu
  read -r n_rps n_p50 n_p99 n_err n_cpu r_rps r_p50 r_p99 r_err r_cpu <<<"$4"
  printf '%s, wrk -t%s -c%s -d%s, median of %s rounds (%s cores)\n' "$1" "$THREADS" "$CONNS" "$DURATION" "$ROUNDS" "$(nproc)"
  printf '  %-10s %10s req/s   p50 %7s ms   p99 %7s ms   errors %s   gateway CPU %s us/request%s\n' nubo "$n_rps" \
    "$n_p50" "$n_p99" "$n_err" "$n_cpu" "${5:+   $5}"
  printf '  %-10s %10s req/s   p50 %7s ms   p99 %7s ms   errors %s\n' "$2" "$r_rps" "$r_p50" "$r_p99" "$r_err"
  printf '  ratio nubo/%s: %sx (target >= %s)\n' "${2%% *}" "$(python3 -c "print(f'{$n_rps/$r_rps:.2f}')")" "$3"
}

# against_nginx TITLE TARGET NUBO_URL NGINX_PATH SERVER_BLOCK: starts nginx
# with SERVER_BLOCK, then measures and reports NUBO_URL against nginx's
# NGINX_PATH (the two must serve the same body).
against_nginx() {
  start_nginx "$5"
  local url="http://127.0.0.1:$NGINX_PORT$4" pair
  wait_for "$url"
  pair=$(measure_pair "$3" "$url") || exit 1
  report_pair "$1" nginx "$2" "$pair"
}

# start_nginx SERVER_BLOCK -> sets NGINX_PORT; nginx runs with one worker per
# core, the given server block listening on 127.0.0.1:$NGINX_PORT.
start_nginx() {
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || { echo "bench: nginx missing (scripts/setup)" >&2; exit 1; }
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  NGINX_PORT=$(free_port)
  mkdir -p "$BENCH_TMP/nginx/logs"
  cat >"$BENCH_TMP/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
daemon off;
pid $BENCH_TMP/nginx/nginx.pid;
error_log $BENCH_TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { text/html html; application/json json; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    $1
  }
}
CONF
  "$nginx" -p "$BENCH_TMP/nginx" -c "$BENCH_TMP/nginx/nginx.conf" &
  PIDS+=($!)
}

# big_project DIR FILES KB: a static project of FILES random files of KB KiB
# each, in 100 x 10 folders, dated two minutes back (as a user's files are:
# not written this very second), named "big".
big_project() {
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys
root, files, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(files):
    d = os.path.join(root, f"dir{i % 100:02d}", f"sub{(i // 100) % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i:05d}.txt"), "wb") as f:
        f.write(os.urandom(kb * 1024))
PY
  find "$1" -type f -exec touch -d '@'$(( $(date +%s) - 120 )) {} +
  echo '{"name": "big", "runtime": "static"}' >"$1/nubo.json"
}
