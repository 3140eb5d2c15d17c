#!/usr/bin/env bash
# Deploy speed on a large project: 10,000 files / 100 MB.
#   1. first deploy (everything hashed and uploaded)
#   2. redeploy, nothing changed (warm hash cache)
#   3. redeploy after changing one file (warm hash cache)
# Reference in the same run: hashing the whole project once with sha256sum,
# which any content-addressed deploy without a hash cache pays every time.
# Target: the one-file redeploy reaches READY in <= 0.5 s.
# Then a real project: an Express-style app whose dependencies (generated
# local packages, no registry) are installed in the folder, deployed first
# (npm ci in the build) and after a one-line change (target <= 0.5 s READY),
# against `npm ci` of the same project run directly.
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-10000}
FILE_KB=${FILE_KB:-10}

proj=$BENCH_TMP/project
big_project "$proj" "$FILES" "$FILE_KB"
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

# ---- a real project: an Express-style app with installed dependencies -------
PKGS=${PKGS:-40}
PKG_FILES=${PKG_FILES:-25}
app=$BENCH_TMP/expressish
mkdir -p "$app"
python3 - "$app" "$PKGS" "$PKG_FILES" <<'PY'
import json, os, sys
root, pkgs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deps = {}
for p in range(pkgs):
    name = f"dep{p:02d}"
    d = os.path.join(root, "vendor", name)
    os.makedirs(os.path.join(d, "lib"), exist_ok=True)
    for f in range(files):
        with open(os.path.join(d, "lib", f"m{f:02d}.js"), "w") as out:
            out.write(f"module.exports = {f};\n" + "// a line of library code\n" * 40)
    with open(os.path.join(d, "index.js"), "w") as out:
        out.write("module.exports = (s) => s;\n")
    with open(os.path.join(d, "package.json"), "w") as out:
        json.dump({"name": name, "version": "1.0.0", "main": "index.js"}, out)
    deps[name] = f"file:vendor/{name}"
with open(os.path.join(root, "package.json"), "w") as out:
    json.dump({"name": "expressish", "version": "1.0.0", "main": "server.js", "dependencies": deps}, out)
with open(os.path.join(root, "server.js"), "w") as out:
    out.write("const deps = [" + ",".join(f"require('dep{p:02d}')" for p in range(pkgs)) + "];\n"
              "const http = require('http');\n"
              "const app = http.createServer((req, res) => res.end(deps[0]('version 1')));\n"
              "app.listen(3000);\n")
PY
(cd "$app" && npm install --offline --install-links --no-audit --no-fund >/dev/null 2>&1)
echo '{"entry": "server.js"}' >"$app/nubo.json"
installed=$(find "$app/node_modules" -type f | wc -l)

ref=$BENCH_TMP/expressish-ref
cp -a "$app" "$ref"
t0=$(date +%s.%N)
(cd "$ref" && npm ci --omit=dev --install-links --no-audit --no-fund >/dev/null 2>&1)
t1=$(date +%s.%N)
npm_ci_s=$(python3 -c "print(f'{$t1-$t0:.3f}')")

app_deploy() {  # -> seconds from `nubo deploy` to READY
  local t0 t1
  t0=$(date +%s.%N)
  "$NUBO" deploy "$app" --app expressish --json >"$BENCH_TMP/app.json"
  t1=$(date +%s.%N)
  [[ $(json_field state <"$BENCH_TMP/app.json") == READY ]] || { echo "bench: the app is not READY" >&2; exit 1; }
  python3 -c "print(f'{$t1-$t0:.3f}')"
}
a1=$(app_deploy)
sed -i "s/version 1/version 2/" "$app/server.js"
a2=$(app_deploy)
[[ $(curl -sf "$NUBO_DATA_URL/expressish/") == 'version 2' ]] || { echo "bench: the app does not answer" >&2; exit 1; }

printf 'real project: an Express-style app, %s local packages installed (%s files in node_modules)\n' \
  "$PKGS" "$installed"
printf '  first deploy (build: npm ci), to READY     %7ss\n' "$a1"
printf '  one-line change, to READY                  %7ss (target <= 0.5 s)\n' "$a2"
printf '  reference: npm ci on this machine          %7ss; one-line change / npm ci = %sx\n' "$npm_ci_s" \
  "$(python3 -c "print(f'{$a2/$npm_ci_s:.2f}')")"
