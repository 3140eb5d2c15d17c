#!/usr/bin/env bash
# A fleet on loopback: three etcd members, Ceph's radosgw (an in-memory
# OSD) as the object store, three `nubo serve` nodes sharing them.
#   1. promote -> every node serving: over $PROMOTES promotes (target p99
#      <= 100 ms), timed from the API's answer to the last of the three nodes
#      answering with the new deployment;
#   2. a one-file redeploy of a 10,000-file project through one node (target
#      <= 0.5 s), against the same on a single node in this run;
#   3. a node that has never seen an app (started after the deploy): its
#      first request to a function app of 100 files (fetch from S3 + cold
#      start), against the first request to a new deployment on a node
#      that holds its files.
source "$(dirname "$0")/lib.sh"
PROMOTES=${PROMOTES:-50}
FILES=${FILES:-10000}
FILE_KB=${FILE_KB:-10}
for tool in /usr/bin/etcd /usr/bin/radosgw /usr/bin/ceph-mon /usr/bin/ceph-osd; do
  [[ -x $tool ]] || { echo "bench: $tool missing (scripts/setup installs it)" >&2; exit 1; }
done

# ---- etcd: three members ------------------------------------------------------
ETCD_ENDPOINTS=""
cluster=""
declare -a peer_ports client_ports
for i in 0 1 2; do
  client_ports[$i]=$(free_port)
  peer_ports[$i]=$(free_port)
  cluster+="${cluster:+,}m$i=http://127.0.0.1:${peer_ports[$i]}"
  ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}http://127.0.0.1:${client_ports[$i]}"
done
for i in 0 1 2; do
  c=http://127.0.0.1:${client_ports[$i]} p=http://127.0.0.1:${peer_ports[$i]}
  /usr/bin/etcd --name "m$i" --data-dir "$BENCH_TMP/etcd-$i" --listen-client-urls "$c" --advertise-client-urls "$c" \
    --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "$cluster" \
    --initial-cluster-token bench --initial-cluster-state new >"$BENCH_TMP/etcd-$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 0 1 2; do
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:${client_ports[$i]}/health" | grep -q true && break; sleep 0.05; done
done

# ---- radosgw: one monitor, one in-memory OSD, the S3 gateway ---------------------
ceph=$BENCH_TMP/ceph
mkdir -p "$ceph"/{run,log,mon,osd/osd.0,rgw}
mon_port=$(free_port)
RGW_PORT=$(free_port)
fsid=$(uuidgen)
cat >"$ceph/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public network = 127.0.0.0/8
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
auth allow insecure global id reclaim = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 1073741824
run dir = $ceph/run
admin socket = $ceph/run/\$name.asok
log file = $ceph/log/\$name.log
mon data = $ceph/mon/\$name
osd data = $ceph/osd/\$name
keyring = $ceph/keyring
[client.rgw.b]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $ceph/rgw
CONF
conf=$ceph/ceph.conf
(
  cd "$ceph"
  ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool keyring --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool keyring --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  ceph-authtool keyring --gen-key -n client.rgw.b --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" monmap >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap monmap --keyring keyring
)
ceph-mon -c "$conf" -i a -f >"$ceph/log/mon.out" 2>&1 &
PIDS+=($!)
osd_uuid=$(uuidgen)
ceph -c "$conf" osd new "$osd_uuid" 0 >/dev/null
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
ceph-osd -c "$conf" -i 0 -f >"$ceph/log/osd.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do ceph -c "$conf" osd stat 2>/dev/null | grep -q "1 up" && break; sleep 0.1; done
radosgw -c "$conf" -n client.rgw.b -f >"$ceph/log/rgw.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 900); do curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=NUBOBENCHACCESSKEY AWS_SECRET_ACCESS_KEY=nubo-bench-secret-key-0123
radosgw-admin -c "$conf" user create --uid=nubo --display-name=nubo --access-key="$AWS_ACCESS_KEY_ID" \
  --secret-key="$AWS_SECRET_ACCESS_KEY" >/dev/null
python3 - "http://127.0.0.1:$RGW_PORT" <<'PY'
# The bucket (the operator's to make): one signed PUT, with botocore-free SigV4.
import datetime, hashlib, hmac, os, sys, urllib.request
endpoint, bucket = sys.argv[1], "fleet"
ak, sk = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
now = datetime.datetime.utcnow()
amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
host = endpoint.split("//")[1]
payload = hashlib.sha256(b"").hexdigest()
canon = f"PUT\n/{bucket}\n\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload}"
scope = f"{day}/us-east-1/s3/aws4_request"
sts = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{hashlib.sha256(canon.encode()).hexdigest()}"
k = ("AWS4" + sk).encode()
for part in (day, "us-east-1", "s3", "aws4_request"):
    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
req = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT", headers={
    "x-amz-date": amz, "x-amz-content-sha256": payload,
    "Authorization": f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"})
urllib.request.urlopen(req).read()
PY

# ---- three nodes ------------------------------------------------------------------
declare -a DATA_URLS CONTROL_URLS NODE_PIDS
start_node() {  # start_node N
  local data=$BENCH_TMP/node$1
  XDG_CONFIG_HOME=$BENCH_TMP/config "$NUBO" serve --data "$data" --listen 127.0.0.1:0 --control 127.0.0.1:0 \
    --etcd "$ETCD_ENDPOINTS" --s3 "http://127.0.0.1:$RGW_PORT" --s3-bucket fleet \
    --secret-key-file "$BENCH_TMP/secret.key" --node-id "node-$1" >"$BENCH_TMP/node$1.log" 2>&1 &
  NODE_PIDS[$1]=$!
  PIDS+=($!)
  for _ in $(seq 1 1000); do
    [[ -s $data/serve.json ]] && grep -q "\"pid\":${NODE_PIDS[$1]}" "$data/serve.json" && break
    sleep 0.01
  done
  DATA_URLS[$1]=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["data_url"])' "$data/serve.json")
  CONTROL_URLS[$1]=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["control_url"])' "$data/serve.json")
  for _ in $(seq 1 500); do curl -sf "${DATA_URLS[$1]}/_nubo/readyz" >/dev/null && break; sleep 0.02; done
}
for n in 1 2 3; do start_node $n; done
export NUBO_SERVER=${CONTROL_URLS[1]} NUBO_TOKEN=$(cat "$BENCH_TMP/node1/admin.token")

# ---- 1. promote -> every node serving ------------------------------------------------
site=$BENCH_TMP/site
mkdir -p "$site"
echo '{"name": "promo", "runtime": "static"}' >"$site/nubo.json"
echo a >"$site/index.html"; a=$("$NUBO" deploy "$site" --json | json_field deployment)
echo b >"$site/index.html"; b=$("$NUBO" deploy "$site" --json --no-promote | json_field deployment)
python3 - "$PROMOTES" "${CONTROL_URLS[3]}" "$NUBO_TOKEN" "$a" "$b" "${DATA_URLS[1]}" "${DATA_URLS[2]}" "${DATA_URLS[3]}" <<'PY'
import http.client, json, statistics, sys, time
n, control, token, a, b = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
nodes = sys.argv[6:]
def conn(url):
    h = url.split("//")[1]
    return http.client.HTTPConnection(h.split(":")[0], int(h.split(":")[1]), timeout=5)
api = conn(control)
peers = [conn(u) for u in nodes]
waits = []
for i in range(n):
    target, body = (b, b"b\n") if i % 2 == 0 else (a, b"a\n")
    api.request("POST", "/v1/apps/promo/promote", json.dumps({"deployment": target}),
                {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = api.getresponse(); r.read()
    assert r.status == 200, r.status
    t0 = time.perf_counter()
    for p in peers:
        deadline = t0 + 5
        while True:
            p.request("GET", "/promo/"); got = p.getresponse().read()
            if got == body: break
            if time.perf_counter() > deadline: raise SystemExit("a node never served the promoted deployment")
    waits.append((time.perf_counter() - t0) * 1000)
waits.sort()
p = lambda q: waits[min(len(waits) - 1, int(round(q * (len(waits) - 1))))]
print(f"promote -> all 3 nodes serving, {n} promotes through node 3: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, "
      f"max {waits[-1]:.1f} ms (target p99 <= 100 ms)")
PY

# ---- 2. one-file redeploy of a 10,000-file project ----------------------------------------
proj=$BENCH_TMP/project
big_project "$proj" "$FILES" "$FILE_KB"
timed_deploy() {  # timed_deploy -> "seconds state"
  local t0 t1 out
  t0=$(date +%s.%N); out=$("$NUBO" deploy "$proj" --json); t1=$(date +%s.%N)
  python3 -c 'import json,sys; print(f"{float(sys.argv[3])-float(sys.argv[2]):.3f}", json.loads(sys.argv[1])["state"])' "$out" "$t0" "$t1"
}
read -r first_s _ <<<"$(timed_deploy)"
printf 'changed\n' >>"$proj/dir42/sub3/file00342.txt"
read -r fleet_s fleet_state <<<"$(timed_deploy)"
# The same on a single node, in this run.
saved_server=$NUBO_SERVER saved_token=$NUBO_TOKEN
start_nubo
"$NUBO" deploy "$proj" --json >/dev/null
printf 'changed again\n' >>"$proj/dir42/sub3/file00342.txt"
read -r single_s _ <<<"$(timed_deploy)"
export NUBO_SERVER=$saved_server NUBO_TOKEN=$saved_token
printf '%s-file project (%s MB): first deploy to the fleet %ss\n' "$FILES" "$(du -sm "$proj" | cut -f1)" "$first_s"
printf '  one file changed: fleet %ss (%s), single node %ss; fleet/single = %sx (target <= 0.5 s)\n' \
  "$fleet_s" "$fleet_state" "$single_s" "$(python3 -c "print(f'{$fleet_s/$single_s:.2f}')")"

# ---- 3. a node that has never seen the app --------------------------------------------------
fn=$BENCH_TMP/fn
mkdir -p "$fn/lib"
echo '{"name": "hundred", "runtime": "node"}' >"$fn/nubo.json"
for i in $(seq 1 99); do echo "export const v$i = $i;" >"$fn/lib/m$i.js"; done
echo "import { v7 } from './lib/m7.js'; export default { fetch() { return new Response('hundred ' + v7); } };" >"$fn/index.js"
"$NUBO" deploy "$fn" --json >/dev/null
first_request() {  # first_request URL -> milliseconds
  curl -s -o /dev/null -w '%{time_total}' "$1" | python3 -c 'import sys; print(f"{float(sys.stdin.read())*1000:.1f}")'
}
warm_ms=$(first_request "${DATA_URLS[1]}/hundred/")   # node 1 holds the files (it took the upload)
start_node 4
cold_ms=$(first_request "${DATA_URLS[4]}/hundred/")
printf 'first request to a 100-file function app: on a node that never saw it %s ms (fetch from S3 + start), ' "$cold_ms"
printf 'on the node that took the upload %s ms; ratio %sx\n' "$warm_ms" "$(python3 -c "print(f'{$cold_ms/$warm_ms:.2f}')")"
