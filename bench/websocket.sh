#!/usr/bin/env bash
# WebSocket echo round trips through nubo vs the same `ws` server run
# directly with Node, same run, same client; then 10,000 idle sockets held
# open through nubo, with the server's memory.
# Target: nubo >= 1.0x the direct ws server.
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "bench: node missing" >&2; exit 1; }
WS_MODULES=$(npm root -g)
[[ -d $WS_MODULES/ws ]] || { echo "bench: the ws package is missing (scripts/setup installs it)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true

SOCKETS=${SOCKETS:-50}        # echo clients, each one round trip at a time
SECONDS_EACH=${SECONDS_EACH:-5}
IDLE=${IDLE:-10000}           # idle sockets held at the end

# The echo server: the app deployed to nubo and the reference, line for line.
app=$BENCH_TMP/echo
mkdir -p "$app/node_modules"
cp -r "$WS_MODULES/ws" "$app/node_modules/"
cat >"$app/index.cjs" <<'JS'
const http = require('node:http');
const { WebSocketServer } = require('ws');
const server = http.createServer((req, res) => res.end('echo'));
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
server.listen(Number(process.env.PORT || 3000), '127.0.0.1');
JS
cat >"$app/nubo.json" <<'JSON'
{"entry": "index.cjs", "limits": {"concurrency": 10000, "max_instances": 1, "memory_mb": 1024}}
JSON

# The same echo written with the runtime's own WebSocket (fetch style).
fetch_app=$BENCH_TMP/echofetch
mkdir -p "$fetch_app"
cat >"$fetch_app/index.mjs" <<'JS'
export default {
  fetch(request) {
    const { socket, response } = upgradeWebSocket(request);
    socket.binaryType = 'nodebuffer';
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  }
}
JS
echo '{"limits": {"concurrency": 10000, "max_instances": 1}}' >"$fetch_app/nubo.json"

start_nubo --max-connections $((IDLE + 1000)) --max-connections-per-client 0
"$NUBO" deploy "$app" --app echo --json >/dev/null
"$NUBO" deploy "$fetch_app" --app echofetch --json >/dev/null
port=$(free_port)
PORT=$port node "$app/index.cjs" &
PIDS+=($!)
wait_for "http://127.0.0.1:$port/"
ws_nubo=${NUBO_DATA_URL/http:/ws:}/echo/
ws_fetch=${NUBO_DATA_URL/http:/ws:}/echofetch/
ws_ref=ws://127.0.0.1:$port/

# The client: SOCKETS sockets each sending a 32-byte message and waiting for
# its echo, for SECONDS_EACH seconds; prints round trips per second and the
# p50/p99 round trip in ms. Bounded: it stops at the deadline.
cat >"$BENCH_TMP/client.cjs" <<'JS'
const WebSocket = require('ws');
const [url, sockets, seconds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const msg = Buffer.alloc(32, 'x');
const times = [];
let done = 0;
const end = Date.now() + seconds * 1000;
for (let i = 0; i < sockets; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let t0;
  const next = () => { t0 = process.hrtime.bigint(); ws.send(msg); };
  ws.on('open', next);
  ws.on('message', () => {
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (Date.now() < end) return next();
    ws.close();
    if (++done === sockets) report();
  });
  ws.on('error', (e) => { console.error(e.message); process.exit(1); });
}
const started = Date.now();
function report() {
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(times.length * p))].toFixed(3);
  console.log(`${(times.length / ((Date.now() - started) / 1000)).toFixed(0)} ${q(0.5)} ${q(0.99)} ${times.length}`);
  process.exit(0);
}
setTimeout(() => { console.error('client: did not finish'); process.exit(1); }, (seconds + 20) * 1000);
JS
# run_client URL [PID] -> "rt/s p50 p99 cpu_us": cpu_us is PID's CPU per round trip (0 without PID).
run_client() {
  local before after out
  before=$(cpu_ticks "${2:-}")
  out=$(NODE_PATH=$WS_MODULES node "$BENCH_TMP/client.cjs" "$1" "$SOCKETS" "$SECONDS_EACH")
  after=$(cpu_ticks "${2:-}")
  python3 -c 'import sys; r, p50, p99, n = sys.argv[1].split(); t = (float(sys.argv[2]) - float(sys.argv[3])) / float(sys.argv[4]); print(r, p50, p99, f"{t * 1e6 / float(n):.2f}")' \
    "$out" "$after" "$before" "$(getconf CLK_TCK)"
}
run_client "$ws_nubo" >/dev/null  # warm: the instance starts, the JIT warms
run_client "$ws_fetch" >/dev/null
run_client "$ws_ref" >/dev/null
rounds=()
for r in $(seq 1 "$ROUNDS"); do
  n=$(run_client "$ws_nubo" "$NUBO_PID")
  f=$(run_client "$ws_fetch" "$NUBO_PID")
  g=$(run_client "$ws_ref")
  echo "  round $r: nubo (ws) ${n%% *}, nubo (fetch) ${f%% *}, ws ${g%% *} round trips/s" >&2
  rounds+=("$n $f $g")
done
python3 - "$SOCKETS" "$SECONDS_EACH" "$ROUNDS" "${rounds[@]}" <<'PY'
import statistics, sys
sockets, secs, rounds = sys.argv[1:4]
rows = [r.split() for r in sys.argv[4:]]
med = [statistics.median(float(x) for x in col) for col in zip(*rows)]
print(f"WebSocket echo, {sockets} sockets, 32-byte messages, {secs} s, median of {rounds} rounds")
print(f"  nubo, ws package      {med[0]:10.0f} round trips/s   p50 {med[1]:7.3f} ms   p99 {med[2]:7.3f} ms   gateway CPU {med[3]:.2f} us/round trip")
print(f"  nubo, upgradeWebSocket {med[4]:9.0f} round trips/s   p50 {med[5]:7.3f} ms   p99 {med[6]:7.3f} ms   gateway CPU {med[7]:.2f} us/round trip")
print(f"  ws directly           {med[8]:10.0f} round trips/s   p50 {med[9]:7.3f} ms   p99 {med[10]:7.3f} ms")
print(f"  ratio nubo/ws: {med[0] / med[8]:.2f}x with the ws package, {med[4] / med[8]:.2f}x fetch style (target >= 1.0x)")
PY

# Idle sockets: IDLE open at once through nubo, held, then the memory of the
# server process (the gateway) and of the instance holding them.
cat >"$BENCH_TMP/idle.cjs" <<'JS'
const WebSocket = require('ws');
const [url, n] = [process.argv[2], Number(process.argv[3])];
let open = 0, failed = 0;
const all = [];
function one() {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  all.push(ws);
  ws.on('open', () => { if (++open + failed === n) console.log(`${open} ${failed}`); else if (all.length < n) one(); });
  ws.on('error', () => { if (open + ++failed === n) console.log(`${open} ${failed}`); else if (all.length < n) one(); });
}
for (let i = 0; i < 200 && i < n; i++) one();
process.stdin.on('data', () => process.exit(0));  // held until told
setTimeout(() => process.exit(1), 120000);
JS
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss_kb "$NUBO_PID")
coproc IDLER { NODE_PATH=$WS_MODULES node "$BENCH_TMP/idle.cjs" "$ws_nubo" "$IDLE"; }
PIDS+=("$IDLER_PID")
read -r -t 120 opened failed <&"${IDLER[0]}" || { echo "bench: the idle sockets did not open in time" >&2; exit 1; }
after=$(rss_kb "$NUBO_PID")
inst_pid=$("$NUBO" ps echo --json | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["pid"])')
inst=$(rss_kb "$inst_pid" 2>/dev/null || echo 0)
echo "go" >&"${IDLER[1]}"
printf 'Idle WebSockets through nubo: %s open, %s refused\n' "$opened" "$failed"
python3 -c 'import sys; b, a, i, n = map(float, sys.argv[1:]); print(f"  server RSS {b/1024:.1f} MiB -> {a/1024:.1f} MiB ({(a-b)/n:.1f} KiB per socket); instance RSS {i/1024:.1f} MiB")' \
  "$before" "$after" "$inst" "$IDLE"
