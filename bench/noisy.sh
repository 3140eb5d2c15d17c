#!/usr/bin/env bash
# A noisy neighbour: the p99 of a JS hello world app alone, then while
# another app's requests spin the CPU (200 ms busy loops, 4 at a time, so it
# runs 4 instances). Each app's instances share one CPU weight (limits.cpu),
# so the hog gets its share, not the machine. The reference is the same app
# alone, measured in the same run.
source "$(dirname "$0")/lib.sh"
require_wrk
HOG_CONNS=${HOG_CONNS:-4}

victim=$BENCH_TMP/victim hog=$BENCH_TMP/hog
mkdir -p "$victim" "$hog"
cat >"$victim/index.js" <<'JS'
export default { async fetch() { return Response.json({ hello: "world" }); } }
JS
cat >"$hog/index.js" <<'JS'
module.exports = (req, res) => { const end = Date.now() + 200; while (Date.now() < end) {} res.end('spun') }
JS
echo '{"limits": {"concurrency": 1, "max_instances": 4, "timeout_ms": 60000}}' >"$hog/nubo.json"
start_nubo ${NUBO_ARGS:-}
"$NUBO" deploy "$victim" --app victim --json >/dev/null
"$NUBO" deploy "$hog" --app hog --json >/dev/null
url=$NUBO_DATA_URL/victim/
wait_for "$url"
wrk -t1 -c8 -d2s "$url" >/dev/null

export CONNS=${CONNS:-8} THREADS=1
read -r alone_rps _ alone_p99 _ <<<"$(run_wrk "$url")"
# The hog's load runs a little longer than the measurement, bounded by wrk.
secs=${DURATION%s}
wrk -t1 -c"$HOG_CONNS" -d"$((secs + 4))s" --timeout 30s "$NUBO_DATA_URL/hog/" >"$BENCH_TMP/hog.out" &
hog_pid=$!
PIDS+=("$hog_pid")
for _ in $(seq 1 300); do
  n=$("$NUBO" ps hog --json | python3 -c 'import json,sys;print(len(json.load(sys.stdin)))')
  [[ $n -ge $HOG_CONNS ]] && break
  sleep 0.01
done
read -r noisy_rps _ noisy_p99 _ <<<"$(run_wrk "$url")"
wait "$hog_pid" || true
printf 'noisy neighbour: victim p99 %.2f ms alone (%s req/s), %.2f ms beside a %s-instance CPU hog (%s req/s): %.2fx\n' \
  "$alone_p99" "$alone_rps" "$noisy_p99" "$n" "$noisy_rps" "$(python3 -c "print($noisy_p99 / $alone_p99)")"
