#!/usr/bin/env bash
# Searching a day of one app's logs: both files an app keeps (8 MiB each,
# ~170,000 lines of access records and function output over 24 hours),
# searched with `nubo logs` by status, text, time and request id (the CLI
# run as a user runs it). Reference: grep -c over the same files, same run.
# Target: every search answers in under 1 s.
source "$(dirname "$0")/lib.sh"

start_nubo ${NUBO_ARGS:-}
app=$BENCH_TMP/logapp
mkdir -p "$app"
echo 'export default { fetch() { return new Response("ok"); } }' >"$app/index.js"
"$NUBO" deploy "$app" --app logapp --json >/dev/null
logs=$BENCH_TMP/data/logs
# A day of lines, the older half in the rotated file, written before the app
# logs anything itself (the server opens its file at the first line).
python3 - "$logs/logapp.log.1" "$logs/logapp.log" <<'PY'
import random, sys, time
random.seed(7)
now = int(time.time() * 1000)
day = 86400 * 1000
files = [open(p, "w") for p in sys.argv[1:]]
size_each = 8 << 20
n = 0
for f in files:
    written = 0
    while written < size_each - 200:
        ts = now - day + n * 870  # a request every 0.87 s: the two files hold about a day
        rid = f"{random.getrandbits(64):016x}"
        status = random.choice([200] * 97 + [404, 500, 503])
        lines = [f"{ts}\tdlogapp000001\trequest\t{rid}\tGET /items/{n % 977} {status} 1.{n % 1000:03d}ms 512B warm\n",
                 f"{ts}\tdlogapp000001\tstdout\t{rid}\tserved item {n % 977} for user {n % 31}\n"]
        if n == 1234:
            lines.append(f"{ts}\tdlogapp000001\tstderr\t{rid}\tthe rare needle\n")
        for l in lines:
            f.write(l)
            written += len(l)
        n += 1
print(n, file=sys.stderr)
PY
files="$logs/logapp.log.1 $logs/logapp.log"
lines=$(cat $files | wc -l)
echo "logs of one app: $(du -cb $files | tail -1 | cut -f1) bytes, $lines lines over 24 h"

# secs CMD...: wall seconds CMD takes (bounded: 30 s), and its output's line count.
secs() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
start = time.monotonic()
out = subprocess.run(sys.argv[1:], check=True, capture_output=True, timeout=30).stdout
lines = out.count(b"\n")
print(f"{time.monotonic() - start:.3f} {lines}")
PY
}
worst=0
search() {  # search LABEL ARGS...
  local label=$1; shift
  read -r t n < <(secs "$NUBO" logs logapp -n 100000 "$@")
  printf '  %-40s %6.3f s  %6d lines\n' "$label" "$t" "$n"
  worst=$(python3 -c "print(max($worst, $t))")
}
rid=$(sed -n '2p' "$logs/logapp.log" | cut -f4)
search "--status 5xx --since 24h" --status 5xx --since 24h
search "--grep NEEDLE --all" --grep NEEDLE --all
search "--requests --since 6h --until 5h" --requests --since 6h --until 5h
search "--request ID" --request "$rid"
read -r ref _ < <(secs grep -ci needle $files)
printf '  %-40s %6.3f s\n' "reference: grep -ci needle (same files)" "$ref"
python3 -c "w=$worst; print(f'slowest search: {w:.3f} s ({\"within\" if w < 1 else \"OVER\"} the 1 s target); ratio to grep: {w / max($ref, 1e-3):.1f}x')"
