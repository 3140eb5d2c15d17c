#!/usr/bin/env bash
# A JS hello world behind a 90/10 traffic split vs the same code as a single
# deployment, same run, same wrk load (no cookies: every request is split
# afresh and answered with the split's cookie, the costliest case).
# Then 10,000 requests without cookies counted by the deployment that
# answered (X-Nubo-Deployment), and 100 from one client sending its cookie.
# Targets: split >= 0.95x single; the 90/10 within 2 points; the client on one.
source "$(dirname "$0")/lib.sh"
require_wrk

make_app() {  # make_app DIR VERSION
  mkdir -p "$1"
  cat >"$1/index.js" <<JS
// version $2
export default { async fetch(request, env, ctx) { return Response.json({ hello: "world" }); } }
JS
}
start_nubo ${NUBO_ARGS:-}
make_app "$BENCH_TMP/single" 1
"$NUBO" deploy "$BENCH_TMP/single" --app single --json >/dev/null
make_app "$BENCH_TMP/split1" 1
d1=$("$NUBO" deploy "$BENCH_TMP/split1" --app split --json | json_field deployment)
make_app "$BENCH_TMP/split2" 2
d2=$("$NUBO" deploy "$BENCH_TMP/split2" --app split --no-promote --json | json_field deployment)
"$NUBO" alias set split production "$d1=90" "$d2=10" >/dev/null

python3 - "$NUBO_DATA_URL" "$d1" <<'PY'
import http.client, sys, urllib.parse
base, heavy = sys.argv[1], sys.argv[2]
u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
def get(headers={}):
    conn.request("GET", "/split/", headers=headers)
    r = conn.getresponse()
    r.read()
    return r.getheader("x-nubo-deployment"), r.getheader("set-cookie")
n, hits = 10000, 0
for _ in range(n):
    d, _ = get()
    hits += d == heavy
share = 100.0 * hits / n
print(f"90/10 split, {n} requests without cookies: {share:.2f}% to the 90% deployment "
      f"({'within' if abs(share - 90) <= 2 else 'OUTSIDE'} 2 points)")
first, cookie = get()
cookie = cookie.split(";")[0]
same = sum(get({"Cookie": cookie})[0] == first for _ in range(100))
print(f"one client sending its cookie: {same} of 100 requests to the same deployment")
PY
pair=$(measure_pair "$NUBO_DATA_URL/split/" "$NUBO_DATA_URL/single/") || exit 1
report_pair "JS hello world, 90/10 split" "single deployment" "0.95x" "$pair"
# (The reference runs on the same server: its "gateway CPU" is not measured apart.)
