#!/usr/bin/env bash
# Time from `nubo env set APP K=V --redeploy` to the new value served by a JS
# function (no build: the deployment's output is reused, the new one is
# started and checked, then promoted). Measured against redeploying the same
# app with a full deploy of its folder, same run.
# Each redeploy's start check takes a stem (a Node process started ahead);
# runs wait until one is ready again (as it is when a person runs the
# command), and the same runs back to back, where a start sometimes waits
# for a stem to boot, are shown beside them.
# Target: env redeploy <= 0.3 s.
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-10}

app=$BENCH_TMP/envapp
mkdir -p "$app"
cat >"$app/index.js" <<'JS'
export default { fetch() { return new Response(process.env.VERSION || 'none'); } }
JS
start_nubo ${NUBO_ARGS:-}
"$NUBO" deploy "$app" --app envapp --json >/dev/null
url="$NUBO_DATA_URL/envapp/"

# timed VALUE CMD...: seconds from running CMD until the function answers
# VALUE (bounded: 10 s), measured in one process (no interpreter start-up
# counted).
timed() {
  python3 - "$url" "$@" <<'PY'
import subprocess, sys, time, urllib.request
url, want, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
start = time.monotonic()
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while time.monotonic() - start < 10:
    try:
        if urllib.request.urlopen(url, timeout=2).read().decode() == want:
            break
    except Exception:
        pass
    time.sleep(0.001)
print(f"{time.monotonic() - start:.4f}")
PY
}
# stems_ready: until the server has a stem waiting (bounded: 5 s).
stems_ready() {
  for _ in $(seq 1 500); do
    [[ $(curl -sf -H "Authorization: Bearer $NUBO_TOKEN" "$NUBO_SERVER/v1/instances" | json_field stems) -ge 1 ]] && return 0
    sleep 0.01
  done
}
burst=()
for i in $(seq 1 "$RUNS"); do
  burst+=("$(timed "b$i" "$NUBO" env set envapp "VERSION=b$i" --redeploy)")
done
times=()
for i in $(seq 1 "$RUNS"); do
  stems_ready
  times+=("$(timed "v$i" "$NUBO" env set envapp "VERSION=v$i" --redeploy)")
done
deploys=()
for i in $(seq 1 "$RUNS"); do
  cat >"$app/index.js" <<JS
export default { fetch() { return new Response('d$i'); } }
JS
  stems_ready
  deploys+=("$(timed "d$i" "$NUBO" deploy "$app" --app envapp)")
done
python3 - "$RUNS" "${times[@]}" -- "${deploys[@]}" -- "${burst[@]}" <<'PY'
import statistics, sys
runs = int(sys.argv[1])
parts, cur = [], []
for x in sys.argv[2:]:
    if x == "--":
        parts.append(cur)
        cur = []
    else:
        cur.append(float(x))
parts.append(cur)
env, dep, burst = parts
print(f"env set --redeploy to the new value served, {runs} runs (the CLI's start-up included)")
print(f"  env redeploy   p50 {statistics.median(env):.3f} s   max {max(env):.3f} s (a stem ready)")
print(f"  back to back   p50 {statistics.median(burst):.3f} s   max {max(burst):.3f} s")
print(f"  full deploy    p50 {statistics.median(dep):.3f} s   max {max(dep):.3f} s (a one-line change, to served)")
print(f"  ratio env/deploy (p50): {statistics.median(env) / statistics.median(dep):.2f}x (target: env redeploy <= 0.3 s)")
PY
