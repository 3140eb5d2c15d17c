#!/usr/bin/env bash
# Cold starts: first-request latency over fresh deployments, with pre-started
# "stem" instances (the default) and without them (--stems 0 --max-stems 0:
# every cold start spawns a sandboxed node), measured in the same run; and
# a storm of fresh deployments hit at once.
# Target: p50 <= 5 ms with stems.
source "$(dirname "$0")/lib.sh"
COUNT=${COUNT:-50}
STEMS=2  # nubo serve's default --stems

app=$BENCH_TMP/app
mkdir -p "$app"
cat >"$app/index.js" <<'JS'
export default { async fetch() { return Response.json({ hello: "world" }); } }
JS
# A deploy's start check leaves a warm instance; idle for a second, it goes
# (scale to zero), and the first request after that is a cold start.
echo '{"limits": {"idle_ttl_s": 1}}' >"$app/nubo.json"

# serve LABEL SERVE_ARGS...: a server of its own; sets pid, data, url, ctl, token.
serve() {
  local label=$1; shift
  data=$BENCH_TMP/data-$label
  XDG_CONFIG_HOME=$BENCH_TMP/config-$label "$NUBO" serve --data "$data" --listen 127.0.0.1:0 \
    --control 127.0.0.1:0 "$@" >"$BENCH_TMP/$label.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 500); do [[ -s $data/serve.json ]] && grep -q "\"pid\":$pid" "$data/serve.json" && break; sleep 0.01; done
  url=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["data_url"])' "$data/serve.json")
  ctl=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["control_url"])' "$data/serve.json")
  token=$(cat "$data/admin.token")
}

measure() {  # measure LABEL SERVE_ARGS... -> prints "p50 p90" in ms
  local label=$1; shift
  local pid data url ctl token
  serve "$label" "$@"
  local times=$BENCH_TMP/$label.times
  : >"$times"
  local ids=()
  for i in $(seq 1 "$COUNT"); do
    ids+=("$(NUBO_SERVER=$ctl NUBO_TOKEN=$token "$NUBO" deploy "$app" --app "cold$i" --json | json_field deployment)")
  done
  # Every deployment scaled to zero (bounded wait).
  for _ in $(seq 1 500); do
    [[ $(curl -sf -H "Authorization: Bearer $token" "$ctl/v1/instances" | python3 -c \
      'import json,sys;print(len(json.load(sys.stdin)["instances"]))') == 0 ]] && break
    sleep 0.02
  done
  for i in $(seq 1 "$COUNT"); do
    local id=${ids[$((i - 1))]}
    # Let the stem pool refill (bounded wait), as it has between real deploys.
    for _ in $(seq 1 300); do
      read -r stems starting <<<"$(curl -sf -H "Authorization: Bearer $token" "$ctl/v1/instances" | python3 -c \
        'import json,sys;j=json.load(sys.stdin);print(j["stems"], j["stems_starting"])')"
      [[ ($stems -ge $STEMS && $starting == 0) || $label == spawn ]] && break
      sleep 0.01
    done
    # From the request leaving the client to the first response byte (curl's
    # own start-up and the TCP connect are not part of a cold start), and the
    # whole of it for reference.
    curl -s -o /dev/null -w '%{time_pretransfer} %{time_starttransfer}\n' -H "Host: $id--cold$i.localhost" "$url/" >>"$times"
  done
  kill "$pid"
  # The server's own account of each cold start (DATA/logs/<app>.log).
  cat "$data"/logs/cold*.log 2>/dev/null | grep -o '^.*cold start: .*' | grep -v 'start check' |
    grep -o 'cold start: .*' >"$BENCH_TMP/$label.phases" || true
  python3 - "$times" <<'PY'
import sys
rows = [tuple(float(v) * 1000 for v in x.split()) for x in open(sys.argv[1]) if x.strip()]
def pct(t, p):
    t = sorted(t)
    return t[min(len(t) - 1, int(round(p / 100 * (len(t) - 1))))]
ttfb = [b - a for a, b in rows]
total = [b for a, b in rows]
print(f"{pct(ttfb, 50):.2f} {pct(ttfb, 90):.2f} {pct(total, 50):.2f}")
PY
}

# Storm: STORM fresh deployments (scaled to zero) hit at the same moment, as
# after a restart or a fan-out. Connections are open first; then every
# request is sent at once and timed to its first byte.
STORM=${STORM:-20}
storm() {  # -> "p50 max" in ms
  local pid data url ctl token
  serve storm
  local hosts=()
  for i in $(seq 1 "$STORM"); do
    local id
    id=$(NUBO_SERVER=$ctl NUBO_TOKEN=$token "$NUBO" deploy "$app" --app "storm$i" --json | json_field deployment)
    hosts+=("$id--storm$i.localhost")
  done
  # Scaled to zero, and the stem pool settled (bounded waits).
  local last=-1
  for _ in $(seq 1 500); do
    read -r n stems <<<"$(curl -sf -H "Authorization: Bearer $token" "$ctl/v1/instances" | python3 -c \
      'import json,sys;j=json.load(sys.stdin);print(len(j["instances"]), j["stems"])')"
    [[ $n == 0 && $stems == "$last" ]] && break
    last=$stems
    sleep 0.1
  done
  python3 - "$url" "${hosts[@]}" <<'PY'
import socket, sys, threading, time
url, hosts = sys.argv[1], sys.argv[2:]
host, port = url.split("//")[1].split(":")
socks = [socket.create_connection((host, int(port)), timeout=10) for _ in hosts]
barrier = threading.Barrier(len(hosts))
times = [None] * len(hosts)
def one(i):
    s = socks[i]
    req = f"GET / HTTP/1.1\r\nHost: {hosts[i]}\r\nConnection: close\r\n\r\n".encode()
    barrier.wait()
    t0 = time.perf_counter()
    s.sendall(req)
    s.recv(1)
    times[i] = (time.perf_counter() - t0) * 1000
threads = [threading.Thread(target=one, args=(i,)) for i in range(len(hosts))]
for t in threads: t.start()
for t in threads: t.join()
t = sorted(times)
print(f"{t[len(t) // 2]:.2f} {t[-1]:.2f}")
PY
  kill "$pid"
}

read -r s50 s90 st50 <<<"$(measure stem)"
read -r p50 p90 pt50 <<<"$(measure spawn --stems 0 --max-stems 0)"
printf 'cold start, first request to %s fresh deployments (sandboxed node, %s cores)\n' "$COUNT" "$(nproc)"
printf '  request sent -> first byte; in brackets p50 of curl'"'"'s whole run (start-up, connect)\n'
printf '  %-22s p50 %7s ms   p90 %7s ms   (%s ms)\n' "with stems" "$s50" "$s90" "$st50"
printf '  %-22s p50 %7s ms   p90 %7s ms   (%s ms)\n' "without (spawn each)" "$p50" "$p90" "$pt50"
printf '  ratio stems/spawn (p50): %sx (target: p50 <= 5 ms with stems)\n' "$(python3 -c "print(f'{$s50/$p50:.2f}')")"
read -r storm50 stormmax <<<"$(storm)"
printf '  storm: %s fresh deployments hit at once: first byte p50 %s ms, max %s ms (target: p50 <= 20 ms, max <= 100 ms)\n' \
  "$STORM" "$storm50" "$stormmax"
python3 - "$BENCH_TMP/stem.phases" <<'PY'
import re, statistics, sys
rows = [dict((k, float(v)) for k, v in re.findall(r'(stem|files|specialize|load|byte) ([\d.]+) ms', l)) for l in open(sys.argv[1])]
if rows:
    med = {k: statistics.median(r[k] for r in rows if k in r) for k in rows[0]}
    print('  server-side medians with stems: ' + ', '.join(f'{k} {v:.1f} ms' for k, v in med.items()))
PY
