#!/usr/bin/env bash
# Deploy speed on a large project: 10,000 files / 100 MB.
#   1. first deploy (everything hashed and uploaded)
#   2. redeploy, nothing changed (warm hash cache)
#   3. redeploy after changing one file (warm hash cache)
# Reference in the same run: hashing the whole project once with sha256sum,
# which any content-addressed deploy without a hash cache pays every time.
# Target: the one-file redeploy reaches READY in <= 0.5 s.
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-10000}
FILE_KB=${FILE_KB:-10}

proj=$BENCH_TMP/project
python3 - "$proj" "$FILES" "$FILE_KB" <<'PY'
import os, sys
root, files, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(files):
    d = os.path.join(root, f"dir{i % 100:02d}", f"sub{(i // 100) % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i:05d}.txt"), "wb") as f:
        f.write(os.urandom(kb * 1024))
PY
# Files as a user's project would be: not written this very second.
find "$proj" -type f -exec touch -d '@'$(( $(date +%s) - 120 )) {} +
echo '{"name": "big", "runtime": "static"}' >"$proj/nubo.json"
total_mb=$(du -sm "$proj" | cut -f1)

start_nubo

deploy() {  # deploy -> "seconds uploaded_files uploaded_bytes state"
  local t0 t1 out
  t0=$(date +%s.%N)
  out=$("$NUBO" deploy "$proj" --json)
  t1=$(date +%s.%N)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(f"{float(sys.argv[3])-float(sys.argv[2]):.3f}", j["uploaded_files"], j["uploaded_bytes"], j["state"])' "$out" "$t0" "$t1"
}

read -r s1 f1 b1 st1 <<<"$(deploy)"
read -r s2 f2 b2 st2 <<<"$(deploy)"
printf 'changed\n' >>"$proj/dir42/sub3/file00342.txt"
read -r s3 f3 b3 st3 <<<"$(deploy)"

t0=$(date +%s.%N); find "$proj" -type f -print0 | xargs -0 -P "$(nproc)" sha256sum >/dev/null; t1=$(date +%s.%N)
ref_s=$(python3 -c "print(f'{$t1-$t0:.3f}')")

printf 'deploy of %s files / %s MB (%s cores)\n' "$FILES" "$total_mb" "$(nproc)"
printf '  first deploy          %7ss  uploaded %5s files, %12s bytes  %s\n' "$s1" "$f1" "$b1" "$st1"
printf '  unchanged redeploy    %7ss  uploaded %5s files, %12s bytes  %s\n' "$s2" "$f2" "$b2" "$st2"
printf '  one file changed      %7ss  uploaded %5s files, %12s bytes  %s (target <= 0.5 s)\n' "$s3" "$f3" "$b3" "$st3"
printf '  reference: hashing the project once (sha256sum, %s procs) %ss; one-file redeploy / reference = %sx\n' \
  "$(nproc)" "$ref_s" "$(python3 -c "print(f'{$s3/$ref_s:.2f}')")"
