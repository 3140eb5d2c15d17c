#!/usr/bin/env bash
# JavaScript hello world through nubo vs a plain Node `http` server returning
# the same JSON, measured in the same run with the same wrk load.
# Target: nubo >= 1.0x plain Node, p99 <= 10 ms at 50 connections.
source "$(dirname "$0")/lib.sh"
require_wrk
command -v node >/dev/null || { echo "bench: node missing" >&2; exit 1; }

app=$BENCH_TMP/hello
mkdir -p "$app"
cat >"$app/index.js" <<'JS'
export default { async fetch(request, env, ctx) { return Response.json({ hello: "world" }); } }
JS
start_nubo ${NUBO_ARGS:-}
"$NUBO" deploy "$app" --app hello --json >/dev/null

port=$(free_port)
cat >"$BENCH_TMP/plain.js" <<JS
const http = require('http');
const body = JSON.stringify({ hello: 'world' });
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}).listen($port, '127.0.0.1');
JS
node "$BENCH_TMP/plain.js" &
PIDS+=($!)
node_url="http://127.0.0.1:$port/"
wait_for "$node_url"
pair=$(measure_pair "$NUBO_DATA_URL/hello/" "$node_url") || exit 1
instances=$("$NUBO" ps hello --json | python3 -c 'import json,sys;print(len(json.load(sys.stdin)))')
report_pair "JS hello world" "node http" "1.0x, p99 <= 10 ms" "$pair" "($instances instances)"
